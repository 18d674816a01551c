"""Mailer's chaos harness: randomized fault schedules and the invariant checker."""
