"""argparse types shared by the bench sections."""

import argparse


def choice_list(what, choices):
    """An argparse type: a comma-separated list, each item one of
    ``choices`` (``what`` names an item in the error)."""
    def parse(text):
        picked = [x.strip() for x in text.split(',') if x.strip()]
        for item in picked:
            if item not in choices:
                raise argparse.ArgumentTypeError('unknown %s %s (use %s)' % (
                    what, item, ', '.join(choices)))
        return picked
    return parse
