#!/bin/sh
# Image build step of the prapush lab node (run once by lab/image/Dockerfile after
# COPY node/rootfs/ /). Prepares what does not depend on the container's env; the rest
# (host key, bm.ini, packages, script family) is done by lab-entrypoint at start.
set -eu
chmod 0755 /usr/local/sbin/lab-entrypoint /usr/local/sbin/lab-set-variant \
	/usr/local/sbin/service /usr/local/bin/systemctl /usr/bin/bmctl \
	/usr/local/lib/prapush-lab/bmapi.py 2>/dev/null || true

# sshd: only the ed25519 host key handed in by the lab, keys only, root allowed.
rm -f /etc/ssh/ssh_host_*_key /etc/ssh/ssh_host_*_key.pub
mkdir -p /run/sshd /etc/ssh/sshd_config.d
cat >/etc/ssh/sshd_config.d/prapush-lab.conf <<'CONF'
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
ChallengeResponseAuthentication no
AuthorizedKeysFile .ssh/authorized_keys
UseDNS no
PrintMotd no
MaxSessions 64
MaxStartups 64:30:128
CONF
grep -q '^Include /etc/ssh/sshd_config.d/\*.conf' /etc/ssh/sshd_config ||
	sed -i '1i Include /etc/ssh/sshd_config.d/*.conf' /etc/ssh/sshd_config
# pam_loginuid cannot write /proc/self/loginuid in an unprivileged container and would
# close every session.
if [ -f /etc/pam.d/sshd ]; then
	sed -i 's/^session\s\+required\s\+pam_loginuid.so/session optional pam_loginuid.so/' /etc/pam.d/sshd
fi
# A locked root ("!") is refused by sshd even with a key when PAM is off; "*" is not.
usermod -p '*' root 2>/dev/null || true

# Two login users for ssh.privilege (the entrypoint gives them root's authorized_keys):
# lab-sudo gets root with NOPASSWD sudo (become = "sudo" passes), lab-user has no
# sudo right at all (become = "sudo" must fail without prompting).
for u in lab-sudo lab-user; do
	getent passwd "$u" >/dev/null || useradd -m -s /bin/sh "$u"
	usermod -p '*' "$u"
done
echo 'lab-sudo ALL=(ALL) NOPASSWD: ALL' >/etc/sudoers.d/lab-sudo
chmod 0440 /etc/sudoers.d/lab-sudo

# /var/backups/bluemind is not created: it is the store's mount point, and a node
# recreated with a file as its store (lab.sh recreate NODE STORE=FILE) must see a
# store that is not a directory (backup.present), which Docker refuses over a directory.
mkdir -p /usr/share/bm-node /etc/bm /etc/bm-node /etc/bm/certs /var/lib/fake-bm \
	/var/log/fake-bm /var/lib/fake-bm-pra /var/lib/prapush-lab \
	/var/spool/cyrus /var/lib/cyrus /var/spool/bm-elasticsearch /var/spool/bm-filehosting \
	/var/spool/bm-hsm /var/spool/bm-hollowed /etc/postfix /etc/nginx
getent group www-data >/dev/null || groupadd -r www-data
getent group bluemind >/dev/null || groupadd -r bluemind
getent group mail >/dev/null || groupadd -r mail
getent passwd cyrus >/dev/null || useradd -r -g mail -d /var/lib/cyrus -s /usr/sbin/nologin cyrus
getent passwd postgres >/dev/null || useradd -r -U -d /var/lib/postgresql -s /bin/sh postgres
getent passwd elasticsearch >/dev/null || useradd -r -U -d /var/spool/bm-elasticsearch \
	-s /usr/sbin/nologin elasticsearch
chown cyrus:mail /var/spool/cyrus /var/lib/cyrus

# Default family until the entrypoint installs the one of LAB_VARIANT.
/usr/local/sbin/lab-set-variant --no-pg bm4es
