"""Deck widgets."""
