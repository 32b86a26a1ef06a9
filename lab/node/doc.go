// Package node holds the fake BlueMind node of the prapush lab: rootfs/ is copied into
// the lab image root (entrypoint, fake bm-pra-restore.py families, bmctl, shims, local
// API), and the tests of this package run the fake script for real inside the image.
package node
