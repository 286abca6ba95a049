"""The kernel libraries built by setup.py (libms_bce_<device>-<hash>.so) are placed here."""
