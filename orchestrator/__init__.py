"""The orchestrator: one ``mailer worker`` process per active sender account."""
