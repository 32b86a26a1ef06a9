#!/usr/bin/python
# -*- coding: utf-8 -*-
#
# FAKE bm-pra-restore.py for the prapush lab -- "@FAMILY@" family.
# Written by the prapush project from its own interface notes; it is not BlueMind code.
# It reproduces the interface of the real script (menu bytes, prompt, stdin handling,
# output lines, exit codes, log name) and only pretends to run commands.
#
# Hard-coded PostgreSQL paths of this family: /etc/postgresql/@PG@/main

import time as _fake_time

FAMILY = "@FAMILY@"
PG_DEFAULT = "@PG@"

# Log name prefix, local time at start: "<dd-mm-YYYY-HH-MM-SS>" + argv[0] + ".log",
# opened relative to the cwd (fails when argv[0] contains a '/').
dt_string = _fake_time.strftime("%d-%m-%Y-%H-%M-%S")
LOG_PREFIX = dt_string

