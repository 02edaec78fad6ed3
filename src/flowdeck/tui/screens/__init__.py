"""Deck screens."""
