#!/usr/bin/python
# -*- coding: utf-8 -*-
#
# FAKE bm-pra-restore.py for the prapush lab -- "legacy" family (BlueMind <= 4.3).
# Written by the prapush project from its own interface notes; it is not BlueMind code.
# It reproduces the interface of the real script (menu bytes, prompt, stdin handling,
# output lines, exit codes, log name) and only pretends to run commands.
#
# Hard-coded PostgreSQL paths of this family: /etc/postgresql/@PG@/main
# Parts missing on this node are reported as "This server is not tagget as <tag>" (sic).

FAMILY = "legacy"
PG_DEFAULT = "@PG@"
NOT_TAGGED_FMT = "This server is not tagget as %s\n"


def legacy_usage():
	# Python 2 print statement, as in the real legacy script: Python 3 refuses the whole
	# file with a SyntaxError before running anything.
	print "usage: bm-pra-restore.py"

