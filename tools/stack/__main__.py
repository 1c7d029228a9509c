"""``python -m tools.stack up [--eventlet] | down | status | env |
restart NAME | kill NAME``.

``up`` starts what is not running (building venvs and databases the first
time), then prints the ``OS_*`` variables for the openstack CLI and where
each service logs; ``down`` stops every process (data and venvs stay, so
the next ``up`` is warm); ``status`` lists the processes; ``env`` prints
the variables again; ``restart`` stops one service and starts it again,
``kill`` ends one with SIGKILL, as a crash would (``up`` starts it again).
``--root`` moves the state (default .cache/stack).
"""

import argparse
import sys

from tools.stack import cloud


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m tools.stack',
                                     description=__doc__.split('\n\n')[0])
    parser.add_argument('command', choices=('up', 'down', 'status', 'env',
                                            'restart', 'kill'))
    parser.add_argument('name', nargs='?',
                        help='the service, for restart and kill')
    parser.add_argument('--eventlet', action='store_true',
                        help='run every Nova service under eventlet '
                             '(default: native threads)')
    parser.add_argument('--root', help='state directory')
    args = parser.parse_args(argv)
    stack = cloud.Stack(args.root)
    if args.command == 'up':
        seconds = stack.up(eventlet=args.eventlet)
        print('# stack up in %.1f s (%s threads); logs in %s'
              % (seconds, 'eventlet' if stack.eventlet else 'native',
                 stack.path('logs')), file=sys.stderr)
        sys.stdout.write(stack.exports())
    elif args.command == 'down':
        stack.down()
    elif args.command in ('restart', 'kill'):
        names = [name for name, _pid, _running in stack.status()]
        if args.name not in names:
            parser.error('%s needs one of: %s'
                         % (args.command, ', '.join(names)))
        getattr(stack, args.command)(args.name)
    elif args.command == 'env':
        sys.stdout.write(stack.exports())
    else:
        rows = stack.status()
        for name, pid, running in rows:
            print('%-12s %-8s %s' % (name, pid or '-',
                                     'running' if running else 'stopped'))
        return 0 if all(running for _, _, running in rows) else 3
    return 0


if __name__ == '__main__':
    sys.exit(main())
