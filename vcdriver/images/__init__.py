"""Glance images onto datastores: the transfer core and disk preparation."""
