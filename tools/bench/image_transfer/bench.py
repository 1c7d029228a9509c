"""What a run stands on: Glance, vcsim, the tbf link and the images.

Bench starts the servers once per run, makes and uploads the images, runs
each case in a worker process (workers.py) and checks what the case left
on the datastore before removing it.
"""

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time

from tools.bench import disk_images
from tools.bench import netns
from tools.bench import worker
from tools.bench.image_transfer.naming import GiB
from tools.bench.image_transfer.naming import MiB
from tools.bench.image_transfer.naming import NAME
from tools.bench.image_transfer.naming import size_bytes
from tools.bench.image_transfer.naming import size_label
from tools.bench.image_transfer.realistic import INCOMPRESSIBLE
from tools.bench.image_transfer.realistic import REALISTIC_FORMATS

PATTERN_BLOCK = 16 << 20         # random block repeated: incompressible
BENCH_FOLDER = 'vcdriver-bench'
WORKER_TIMEOUT = 1800


def _sha512_file(path, block=8 * MiB):
    h = hashlib.sha512()
    with open(path, 'rb') as f:
        while True:
            data = f.read(block)
            if not data:
                return h.hexdigest()
            h.update(data)


def _write_pattern(path, size, block=PATTERN_BLOCK):
    """``size`` bytes of a random block repeated: nothing compresses it."""
    pattern = os.urandom(min(block, size))
    with open(path, 'wb') as f:
        left = size
        while left:
            n = min(left, len(pattern))
            f.write(pattern[:n] if n < len(pattern) else pattern)
            left -= n


def _free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _mem_available():
    """MemAvailable of /proc/meminfo in bytes (what tmpfs may take)."""
    with open('/proc/meminfo') as f:
        for line in f:
            if line.startswith('MemAvailable:'):
                return int(line.split()[1]) * 1024
    return 0


def say(fmt, *args):
    print(fmt % args, file=sys.stderr, flush=True)


@dataclasses.dataclass
class RealisticImage:
    kind: str
    path: str            # the local image file (None: check the sha512)
    glance: dict         # Glance's record
    data_bytes: int
    virtual_bytes: int


def _tree(root):
    """Every file and folder under ``root``, relative to it."""
    out = set()
    for top, dirs, files in os.walk(root):
        rel = os.path.relpath(top, root)
        for name in dirs + files:
            out.add(os.path.normpath(os.path.join(rel, name)))
    return out


def _topmost(paths):
    """The paths of ``paths`` whose parent folder is not in it."""
    return sorted(p for p in paths if os.path.dirname(p) not in paths)


class Bench:
    """Glance, vcsim and (for tbf) the shaped link, for one run."""

    def __init__(self, sizes, links, workdir=None, log=say,
                 realistic=None):
        self.sizes = sizes
        self.links = links
        self.log = log
        self.workdir = workdir
        self.realistic = realistic
        self.link = None
        self.glance = None
        self.vcsim = None
        self.images = {}     # size -> Glance record
        self.r_images = {}   # kind -> RealisticImage
        self.notes = []      # where things are, for the report
        self._ds_root = None
        self._stack = contextlib.ExitStack()

    # set-up ---------------------------------------------------------------

    def __enter__(self):
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc):
        self._stack.close()

    def _start(self):
        from tests.harness import glance as glance_harness
        from tests.harness import tls
        from tests.harness import vcsim as vcsim_harness

        if self.workdir is None:
            self.workdir = tempfile.mkdtemp(prefix='vcdriver-bench-')
            self._stack.callback(shutil.rmtree, self.workdir, True)
        if 'tbf' in self.links:
            self.link = netns.ShapedLink()
            self.link.setup()
            self._stack.callback(self.link.teardown)
            # Servers, uploads and loopback cases live in the server
            # namespace; only the shaped cases cross to the client one.
            self.link.enter_server()
            self.log('bench: tbf link %s <-> %s, %s',
                     self.link.server_ip, self.link.client_ip,
                     '; '.join(self.link.qdiscs().values()))
        # The largest file a case writes on the datastore: a flat extent
        # (the flat PUT writes the zeros too).
        biggest = max([size_bytes(s) for s in self.sizes] + [
            self.realistic.virtual_bytes(k) for k in
            (self.realistic.images if self.realistic else ())] + [0])
        # The datastore on tmpfs when it fits in it and in memory: the
        # sink is not what is measured, and disk write-back must not
        # throttle it.
        shm = '/dev/shm'
        if os.path.isdir(shm) and _free_bytes(shm) > biggest + GiB and \
                _mem_available() > biggest + 2 * GiB:
            self._ds_root = tempfile.mkdtemp(prefix='vcdriver-bench-ds-',
                                             dir=shm)
            where = 'tmpfs'
        else:
            self._ds_root = os.path.join(self.workdir, 'datastores')
            os.makedirs(self._ds_root)
            where = 'disk: tmpfs or memory too small'
        self._stack.callback(shutil.rmtree, self._ds_root, True)
        free = _free_bytes(self._ds_root)
        if free < biggest + GiB // 2:
            raise RuntimeError('not enough room for a %d MiB datastore copy '
                               'in %s' % (biggest // MiB, self._ds_root))
        self.notes.append('datastore in %s (%s, %.1f GiB free at start; '
                          'largest file %.1f GiB); work dir %s (%.1f GiB '
                          'free at start)' % (
                              self._ds_root, where, free / GiB,
                              biggest / GiB, self.workdir,
                              _free_bytes(self.workdir) / GiB))
        import pathlib
        tls_dir = pathlib.Path(self.workdir) / 'tls'
        tls_dir.mkdir()
        cert, key, _name = tls.self_signed(tls_dir)
        extra = ['-listen', '0.0.0.0:0']
        if self.realistic and 'intree' in self.realistic.cases:
            # The in-tree driver's start-up walks the inventory with
            # oslo.vmware's recursive TraversalSpec (tools/bench/intree.py).
            extra.append('-typed-traversal')
        self.vcsim = vcsim_harness.Vcsim(
            hosts_per_cluster=1, nfs=1, datastore_root=self._ds_root,
            tls_cert=cert, tls_key=key, extra_args=extra)
        self.vcsim.start()
        self._stack.callback(self.vcsim.stop)
        self.ds = sorted(self.vcsim.datastores)[0]
        self.cluster = self.vcsim.clusters[0]
        self.ds_dir = self.vcsim.datastores[self.ds]
        os.makedirs(os.path.join(self.ds_dir, BENCH_FOLDER), exist_ok=True)
        self.glance = glance_harness.Glance(
            workdir=os.path.join(self.workdir, 'glance'), bind_host='0.0.0.0')
        self.glance.start()
        self._stack.callback(self.glance.stop)
        self.log('bench: vcsim on port %d (datastore %s in %s), Glance on '
                 'port %d', self.vcsim.port, self.ds, self.ds_dir,
                 self.glance.port)
        for size in sorted(set(self.sizes)):
            self.images[size] = self._upload(size)
        if self.realistic:
            self._make_realistic()

    def _make_realistic(self):
        """Make the realistic images (disk_images) and put them in
        Glance; keep the local files, to compare the disks with."""
        r = self.realistic
        formats = [k for k in r.images if k in REALISTIC_FORMATS]
        if formats:
            layout = disk_images.Layout(size_bytes(r.virtual),
                                        size_bytes(r.data))
            # The raw source (data allocated), its conversions (about the
            # data each), and Glance's copies (the raw one whole).
            need = (layout.data * (1 + 2 * len(formats)) +
                    (layout.virtual if 'raw' in formats else 0) + GiB)
            free = _free_bytes(self.workdir)
            if free < need:
                raise RuntimeError(
                    'not enough room in %s for the realistic images: %.1f '
                    'GiB free, %.1f GiB needed (use a smaller '
                    '--realistic-virtual-gib or --images without raw)'
                    % (self.workdir, free / GiB, need / GiB))
            raw = os.path.join(self.workdir, 'realistic.raw')
            start = time.monotonic()
            data = disk_images.write_raw(raw, layout)
            self.log('bench: made a %s raw disk holding %s of data in '
                     '%.1f s', size_label(r.virtual), size_label(r.data),
                     time.monotonic() - start)
        for kind in r.images:
            if kind == INCOMPRESSIBLE:
                glance = (self.images.get(r.incompressible) or
                          self._upload(r.incompressible))
                self.r_images[kind] = RealisticImage(
                    kind, None, glance, r.data_bytes(kind),
                    r.virtual_bytes(kind))
                continue
            start = time.monotonic()
            path = raw
            if kind != 'raw':
                path = disk_images.convert(
                    raw, kind, os.path.join(self.workdir,
                                            'realistic.%s' % kind))
            converted = time.monotonic()
            _qemu, _opts, disk_format, props = disk_images.FORMATS[kind]
            glance = self.glance.upload(path, 'bench-%s' % r.label(kind),
                                        disk_format=disk_format,
                                        container_format='bare', **props)
            if glance['size'] != os.path.getsize(path):
                raise RuntimeError('Glance stored %s bytes of %s, not %d'
                                   % (glance['size'], path,
                                      os.path.getsize(path)))
            self.log('bench: %s: %.1f MiB, converted in %.1f s, uploaded '
                     'in %.1f s as image %s', r.label(kind),
                     glance['size'] / MiB, converted - start,
                     time.monotonic() - converted, glance['id'])
            self.r_images[kind] = RealisticImage(kind, path, glance, data,
                                                 layout.virtual)

    def images_info(self):
        """{kind: {data_bytes, glance_bytes, virtual_bytes}}."""
        return {k: {'data_bytes': i.data_bytes,
                    'glance_bytes': i.glance['size'],
                    'virtual_bytes': i.virtual_bytes}
                for k, i in self.r_images.items()}

    def _upload(self, size):
        n = size_bytes(size)
        need = n + GiB // 2
        if _free_bytes(self.workdir) < 2 * need:
            raise RuntimeError('not enough room in %s for a %d MiB image '
                               '(and its copy in Glance)'
                               % (self.workdir, n // MiB))
        path = os.path.join(self.workdir, 'image-%s.raw' % size_label(size))
        _write_pattern(path, n)
        start = time.monotonic()
        try:
            image = self.glance.upload(path, 'bench-%s' % size_label(size),
                                       disk_format='raw',
                                       container_format='bare')
        finally:
            os.unlink(path)
        self.log('bench: uploaded %s image %s in %.1f s (%s %s...)',
                 size_label(size), image['id'], time.monotonic() - start,
                 image['os_hash_algo'], image['os_hash_value'][:16])
        if image['size'] != n:
            raise RuntimeError('Glance stored %s bytes, not %d'
                               % (image['size'], n))
        return image

    # running --------------------------------------------------------------

    def _spec(self, link, size, case, conf=None):
        host = self.link.server_ip if link == 'tbf' else '127.0.0.1'
        image = self.images[size]
        name = 'ours.vmdk' if case == 'ours' else '%s.img' % case
        return {
            'case': case, 'size': size_bytes(size),
            'image_id': image['id'],
            'glance': 'http://%s:%d' % (host, self.glance.port),
            'vc_host': host, 'vc_port': self.vcsim.port,
            'user': self.vcsim.username, 'password': self.vcsim.password,
            'dc': 'DC0', 'ds': self.ds, 'cluster': self.cluster,
            'folder': BENCH_FOLDER, 'name': name, 'conf': conf or {},
        }

    def _written_file(self, spec):
        name = spec['name']
        if spec['case'] == 'ours':
            name = name[:-len('.vmdk')] + '-flat.vmdk'
        return os.path.join(self.ds_dir, spec['folder'], name)

    def _clean_folder(self):
        folder = os.path.join(self.ds_dir, BENCH_FOLDER)
        for name in os.listdir(folder):
            path = os.path.join(folder, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)

    def run_case(self, link, size, case, conf=None):
        """One transfer in a fresh process; verified; returns its rates."""
        spec = self._spec(link, size, case, conf)
        self._clean_folder()
        # The tbf case runs in the client's network namespace.
        result = worker.run(
            NAME, spec, self.log, WORKER_TIMEOUT,
            what='%s %s %s' % (link, size_label(size), case),
            prefix=self.link.client_prefix() if link == 'tbf' else (),
            log_path=os.path.join(self.workdir, 'worker.log'),
            stdout_tail=2000)
        self._verify(spec)
        self._clean_folder()
        return result

    def _verify(self, spec):
        image = self.images_by_id()[spec['image_id']]
        path = self._written_file(spec)
        size = os.path.getsize(path)
        if size != image['size']:
            raise RuntimeError('%s wrote %d bytes to %s, the image has %d'
                               % (spec['case'], size, path, image['size']))
        digest = _sha512_file(path)
        if image['os_hash_algo'] != 'sha512' or \
                digest != image['os_hash_value']:
            raise RuntimeError("%s: %s does not hash to Glance's %s"
                               % (spec['case'], path, image['os_hash_algo']))

    def images_by_id(self):
        return {i['id']: i for i in self.images.values()}

    # the realistic part -----------------------------------------------------

    def _nfc(self, method='GET'):
        """The launcher's NFC lease list (GET) or forget finished leases
        (DELETE)."""
        import ssl
        import urllib.request
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        req = urllib.request.Request(self.vcsim.http_url('/vcdriver/nfc'),
                                     method=method)
        with urllib.request.urlopen(req, timeout=30, context=ctx) as resp:
            body = resp.read()
        return json.loads(body) if method == 'GET' else None

    def _local(self, ds_path):
        """'[ds] a/b.vmdk' -> the file in the launcher's datastore folder."""
        ds, _, rel = ds_path.partition('] ')
        if ds.lstrip('[') != self.ds:
            raise RuntimeError('%s is not on datastore %s' % (ds_path,
                                                              self.ds))
        return os.path.join(self.ds_dir, rel)

    def run_realistic(self, link, kind, case, level=None):
        """One case of the realistic part in a fresh process, to a cached
        disk; verified. Returns its figures, or {'skipped': why} when the
        in-tree driver cannot run it here."""
        r = self.realistic
        img = self.r_images[kind]
        host = self.link.server_ip if link == 'tbf' else '127.0.0.1'
        conf = {}
        if case == 'ours_flat':
            conf['image_upload_method'] = 'flat'
        if level is not None:
            conf['image_deflate_level'] = level
        spec = {
            'case': 'intree_spawn' if case == 'intree' else 'cached',
            'size': img.data_bytes, 'image_id': img.glance['id'],
            'glance': 'http://%s:%d' % (host, self.glance.port),
            'vc_host': host, 'vc_port': self.vcsim.port,
            'soap_url': 'https://%s:%d/sdk' % (host, self.vcsim.port),
            'user': self.vcsim.username, 'password': self.vcsim.password,
            'dc': 'DC0', 'ds': self.ds, 'cluster': self.cluster,
            'conf': conf,
            'declare': ('preallocated' if img.glance['disk_format'] == 'raw'
                        else None),
        }
        what = '%s %s %s%s' % (link, r.label(kind), case,
                               '' if level is None else ' level %d' % level)
        before = _tree(self.ds_dir)
        self._nfc('DELETE')
        try:
            result = worker.run(
                NAME, spec, self.log, WORKER_TIMEOUT, what=what,
                prefix=self.link.client_prefix() if link == 'tbf' else (),
                log_path=os.path.join(self.workdir, 'worker.log'),
                stdout_tail=2000)
            if 'skipped' in result:
                return result
            leases = [lease for lease in self._nfc().get('leases', [])
                      if lease.get('kind') == 'import']
            new = _tree(self.ds_dir) - before
            allocated = sum(disk_images.allocated(
                os.path.join(self.ds_dir, p)) for p in new
                if os.path.isfile(os.path.join(self.ds_dir, p)))
            self._verify_disk(what, img, self._local(result['disk']))
        finally:
            for path in _topmost(_tree(self.ds_dir) - before):
                full = os.path.join(self.ds_dir, path)
                if os.path.isdir(full):
                    shutil.rmtree(full, ignore_errors=True)
                elif os.path.exists(full):
                    os.unlink(full)
        sent = sum(lease.get('bytes_received', 0) for lease in leases)
        return {'seconds': result['seconds'],
                'sent_bytes': sent + result.get('put_bytes', 0),
                'nfc_bytes': sent, 'put_bytes': result.get('put_bytes', 0),
                'allocated_bytes': allocated,
                'cpu_s_per_data_gib': result['cpu_seconds'] /
                (img.data_bytes / GiB),
                'rss_growth_mib': result['rss_growth_mib'],
                'leases': [lease.get('state') for lease in leases]}

    def _verify_disk(self, what, img, descriptor):
        """The cached disk's flat extent holds the image's disk."""
        flat = descriptor[:-len('.vmdk')] + '-flat.vmdk'
        size = os.path.getsize(flat)
        if size != img.virtual_bytes:
            raise RuntimeError('%s: %s is %d bytes, the disk %d'
                               % (what, flat, size, img.virtual_bytes))
        if img.path is None:
            if _sha512_file(flat) != img.glance['os_hash_value']:
                raise RuntimeError("%s: %s does not hash to Glance's %s"
                                   % (what, flat,
                                      img.glance['os_hash_algo']))
            return
        why = disk_images.compare(img.path, img.kind, flat)
        if why:
            raise RuntimeError('%s: %s differs from %s: %s'
                               % (what, flat, img.path, why))
