"""Monitoring of served traffic: windows of the app's prediction log, their drift against
the answering version's reference, their quality once outcomes arrive, and the reports."""
