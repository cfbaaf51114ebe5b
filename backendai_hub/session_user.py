"""Who a session runs as and where its home is: shared by the jail and the vfolder storage."""

SESSION_UID = 1000
SESSION_GID = 1000
SESSION_HOME = "/home/work"
