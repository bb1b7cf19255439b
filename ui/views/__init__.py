"""Sections of the dashboard page (each renders one part from data it is given)."""
