"""Intake: submissions from LMS downloads and the exchange, matched to the roster's students."""
