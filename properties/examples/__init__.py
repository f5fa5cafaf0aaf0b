"""Worked examples for the conformance kit: a small session written from the kit's docs, and its adapter."""
