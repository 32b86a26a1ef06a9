# BlueMind 5 "cyrusectomie": mail/imap and mail/archive restore bodies were replaced by a
# no-op ("LC TODO: THIS WILL NOT WORK"): the header is printed, nothing is restored, rc 0.
CYRUS_NOOP = True

# bm-hps was removed from BlueMind 5: no HPS configuration step.
NO_HPS = True

