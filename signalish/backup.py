"""Password-protected backups of an identity, its prekeys, its sessions and
the application's data kept in the store.

:func:`create_backup` seals them under a password (Argon2id with
:class:`BackupParams`, then AES-256-GCM); :func:`restore_backup` writes them
into a store in one transaction and makes every restored session
receive-only, since the backed-up device may have sent on it since.  A wrong
password raises :class:`~signalish.WrongPassword`.  Format and the
reasoning behind the restore rules: :doc:`sealed_backup_safety`.
"""

from ._backup import BackupParams, create_backup, restore_backup

__all__ = ["BackupParams", "create_backup", "restore_backup"]
