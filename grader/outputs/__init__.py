"""Outputs: feedback pages, grade exports and the class report, read from the stored records."""
