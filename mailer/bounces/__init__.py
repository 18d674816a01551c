"""Bounce and complaint mail: reading the reports that come back as mail.

``parse`` reads one message (pure), ``mailbox`` lists, fetches and flags messages of an
account's mailbox (IMAP; ``gmail_mailbox`` is a Gmail account's, through the API, behind
the same interface), ``records``
applies a report to the database once, and ``reader`` is the process that polls every
account's mailbox (see its docstring for why it is a process of its own).
"""
