"""Images as users make them, with the tools they use."""

import subprocess


def qcow2(path, size='64M', data='1M', pattern=0x5a):
    """A qcow2 as users make them: ``qemu-img create``, then ``data``
    bytes of ``pattern`` written at its start with qemu-io."""
    path = str(path)
    subprocess.run(['qemu-img', 'create', '-f', 'qcow2', path, size],
                   check=True, capture_output=True)
    subprocess.run(['qemu-io', '-f', 'qcow2', '-c', 'write -P %d 0 %s'
                    % (pattern, data), path], check=True, capture_output=True)
    return path


def compare(a, a_format, b, b_format):
    """``qemu-img compare``: the two disks read alike (beyond the smaller
    one, the larger reads zeros)."""
    proc = subprocess.run(['qemu-img', 'compare', '-f', a_format, str(a),
                           '-F', b_format, str(b)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, 'qemu-img compare %s %s: %s%s' % (
        a, b, proc.stdout, proc.stderr)
