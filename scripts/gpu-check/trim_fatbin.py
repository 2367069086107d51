#!/usr/bin/env python3
"""Blank the CUDA device code a GPU check will never run, so the library packs small.

Why: libonnxruntime_providers_cuda.so carries SASS for six GPU generations (~219
MB).  The check runs on sm_90 (H100/H200) only.  Blanking the other payloads
keeps the file size, every ELF header and every address unchanged, so the
dynamic loader and the CUDA runtime see the same layout, while xz packs the
zero runs to nothing.

Format (little-endian; undocumented by NVIDIA, confirmed on onnxruntime-gpu
1.31.1 against cuobjdump 13.x):
* ELF64 section headers locate `.nv_fatbin` (and `__nv_relfatbin`, if present).
  `.nvFatBinSegment` holds only 24-byte wrappers {u32 0x466243B1, u32 version,
  u64 address of a container, u64 0}: the runtime registers each container by
  that address.  We check every wrapper points at a container we walked.
* A section is a run of containers, possibly with zero padding between them.
  Container header: u32 magic 0xBA55ED50, u16 version 1, u16 header size (16),
  u64 byte size of the entries that follow.
* Entries tile the container; each is a header then its payload:
    0 u16 kind (1 PTX, 2 ELF cubin)    2 u16 version 0x0101   4 u32 header size
    8 u64 payload size (padded to 8)  16 u32 compressed size  20 u32 options offset
   24 u16 code version minor         26 u16 major            28 u32 arch (75..120)
   32 u32 obj-name offset, 36 len    40 u64 flags            48 u64 reserved
   56 u64 uncompressed size          64.. options (header size 112 carries them)
  Flags: 0x1 64-bit, 0x10 Linux, 0x2000 LZ4 / 0x8000 zstd compressed payload,
  0x100000 arch-specific target (cuobjdump: sm_90a).  The arch field reads 90
  for sm_90 and sm_90a alike, so `--keep sm_90` keeps both; sm_90a SASS runs on
  every compute-capability-9.0 GPU (H100, H200).

Policy: keep the entries of kept archs, cubin and PTX alike (a kept arch's PTX
is its own JIT fallback); blank the rest.  Two ways to blank:
* default: zero the payload bytes, headers untouched.  NVIDIA's cuobjdump then
  refuses the file ("Uncompress failed": it decompresses every entry).
* --compact: move the kept entries to the front of their container, shrink the
  container's size field and zero the freed tail; containers with no kept entry
  stay as they are.  The result is a well-formed fatbin (cuobjdump lists and
  extracts it), so nothing can trip over a blanked entry.
Either way OUT is re-read and verified before it replaces OUT.

Usage: trim_fatbin.py IN OUT --keep sm_90 [--keep ...] [--compact] | --self-test
"""
import argparse, collections, os, re, shutil, struct, sys

FATBIN_MAGIC, WRAPPER_MAGIC = 0xBA55ED50, 0x466243B1
FATBIN_SECTIONS = (".nv_fatbin", "__nv_relfatbin")
CONTAINER = struct.Struct("<IHHQ")
ENTRY = struct.Struct("<HHIQIIHHIIIQQQ")  # the 64-byte fixed part described above
KINDS = {1: "PTX", 2: "ELF"}
Entry = collections.namedtuple("Entry", "hdr kind arch flags payload end")
Container = collections.namedtuple("Container", "off hsize size entries")


class FormatError(Exception):
    """The bytes are not laid out as this script understands them: write nothing."""


def elf_sections(buf):
    """{name: (file offset, size, address)} from the ELF64 section headers."""
    if buf[:4] != b"\x7fELF" or buf[4] != 2 or buf[5] != 1:
        raise FormatError("not a little-endian ELF64 file")
    shoff, = struct.unpack_from("<Q", buf, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", buf, 0x3A)
    if shentsize != 64 or shoff + shnum * 64 > len(buf):
        raise FormatError("ELF section header table is out of bounds")
    hdrs = [struct.unpack_from("<IIQQQQIIQQ", buf, shoff + i * 64) for i in range(shnum)]
    strtab, out = hdrs[shstrndx][4], {}
    for name, typ, _, addr, off, size, *_ in hdrs:
        name = bytes(buf[strtab + name:buf.index(b"\0", strtab + name)]).decode()
        out[name] = (off, 0 if typ == 8 else size, addr)  # SHT_NOBITS has no file bytes
    return out


def walk(buf, start, end):
    """Parse buf[start:end] into containers; return (containers, padding gaps)."""
    containers, gaps, pos, magic = [], 0, start, struct.pack("<I", FATBIN_MAGIC)
    while pos < end:
        if buf[pos:pos + 4] != magic:
            # Containers are aligned, so a gap may precede one; it must be zeros.
            nxt = buf.find(magic, pos, end)
            stop = end if nxt < 0 else nxt
            if buf.count(0, pos, stop) != stop - pos:
                raise FormatError(f"non-zero bytes between containers at {pos:#x}..{stop:#x}")
            gaps, pos = gaps + 1, stop
            if nxt < 0:
                break
        _, ver, hsize, size = CONTAINER.unpack_from(buf, pos) if pos + 16 <= end else (0,) * 4
        if ver != 1 or hsize < CONTAINER.size or pos + hsize + size > end:
            raise FormatError(f"bad container at {pos:#x}: version {ver}, header {hsize}, size {size}")
        entries, e, cend = [], pos + hsize, pos + hsize + size
        while e < cend:
            if e + ENTRY.size > cend:
                raise FormatError(f"truncated entry header at {e:#x}")
            kind, _, ehs, psize, csize, *_, arch, _, _, flags, _, _ = ENTRY.unpack_from(buf, e)
            if kind not in KINDS or ehs < ENTRY.size or not 10 <= arch < 1000:
                raise FormatError(f"unexpected entry at {e:#x}: kind {kind}, header {ehs}, arch {arch}")
            if e + ehs + psize > cend or (flags & 0xA000 and csize > psize):
                raise FormatError(f"entry at {e:#x} overruns its container or payload")
            entries.append(Entry(e, kind, arch, flags, e + ehs, e + ehs + psize))
            e += ehs + psize
        containers.append(Container(pos, hsize, size, entries))
        pos = cend
    return containers, gaps


def blank(buf, regions, keep, compact):
    """Blank non-kept entries of every region in place; return the input's containers."""
    walked = []
    for start, end in regions:
        containers, gaps = walk(buf, start, end)
        walked.append((containers, gaps))
        for c in containers:
            kept = [e for e in c.entries if e.arch in keep]
            if compact and kept:
                body = b"".join(buf[e.hdr:e.end] for e in kept)
                lo, hi = c.off + c.hsize, c.off + c.hsize + c.size
                buf[lo:hi] = body + bytes(hi - lo - len(body))
                struct.pack_into("<Q", buf, c.off + 8, len(body))
            elif not compact:
                for e in c.entries:
                    if e.arch not in keep:
                        buf[e.payload:e.end] = bytes(e.end - e.payload)
    return walked


def verify(orig, out, regions, keep, compact):
    """Re-walk OUT: kept entries byte-identical, blanked bytes zero, all else unchanged."""
    if len(out) != len(orig):
        raise FormatError("file size changed")
    changed = []  # the only byte ranges allowed to differ, each checked here
    for start, end in sorted(regions):
        before, after = walk(orig, start, end)[0], walk(out, start, end)[0]
        if [c.off for c in before] != [c.off for c in after]:
            raise FormatError("containers moved")
        for b, a in zip(before, after):
            kept = [e for e in b.entries if e.arch in keep]
            if compact and kept:
                body = b"".join(orig[e.hdr:e.end] for e in kept)
                lo, hi = b.off + b.hsize, b.off + b.hsize + b.size
                if a.size != len(body) or out[lo:lo + len(body)] != body \
                        or out.count(0, lo + len(body), hi) != hi - lo - len(body):
                    raise FormatError(f"container at {b.off:#x} not compacted as expected")
                changed += [(b.off + 8, b.off + 16), (lo, hi)]
                continue
            if a.entries != b.entries:
                raise FormatError(f"entry headers changed in container at {b.off:#x}")
            for e in b.entries:
                if e.arch not in keep and not compact:
                    if out.count(0, e.payload, e.end) != e.end - e.payload:
                        raise FormatError(f"payload at {e.payload:#x} not zeroed")
                    changed.append((e.payload, e.end))
    prev = 0
    for lo, hi in changed + [(len(out), len(out))]:
        if out[prev:lo] != orig[prev:lo]:  # ELF headers, code, kept payloads...
            raise FormatError(f"bytes changed outside blanked ranges in {prev:#x}..{lo:#x}")
        prev = hi


def check_wrappers(buf, secs, walked):
    """Every .nvFatBinSegment wrapper must point at a container we walked."""
    off, size, _ = secs.get(".nvFatBinSegment", (0, 0, 0))
    starts = set()
    for name in FATBIN_SECTIONS:
        s_off, s_size, s_addr = secs.get(name, (0, 0, 0))
        starts |= {s_addr + c.off - s_off for cs, _ in walked for c in cs
                   if s_off <= c.off < s_off + s_size}
    for p in range(off, off + size - 23, 24):
        magic, _, ptr, _ = struct.unpack_from("<IIQQ", buf, p)
        if magic != WRAPPER_MAGIC or (ptr and ptr not in starts):  # 0: set by relocation
            raise FormatError(f".nvFatBinSegment wrapper at {p:#x} does not point at a container")
    return size // 24


def summarize(walked, keep, compact):
    containers = [c for cs, _ in walked for c in cs]
    entries = [e for c in containers for e in c.entries]
    print(f"containers: {len(containers)} (zero-padding gaps: {sum(g for _, g in walked)}),"
          f" entries: {len(entries)}")
    count, size = collections.Counter(), collections.Counter()
    for e in entries:
        comp = "zstd" if e.flags & 0x8000 else "lz4" if e.flags & 0x2000 else "raw"
        key = (KINDS[e.kind], e.arch, comp, e.flags)
        count[key] += 1
        size[key] += e.end - e.payload
    for key in sorted(count):
        kind, arch, comp, flags = key
        print(f"  {kind} sm_{arch:<4}{count[key]:5d} entries {size[key]:12,d} B payload, {comp},"
              f" flags {flags:#x}: {'KEEP' if arch in keep else 'blank'}")
    untouched = [c for c in containers if compact and not any(e.arch in keep for e in c.entries)]
    if compact:
        print(f"containers without a kept entry, left as they are: {len(untouched)}")
    gone = sum(e.end - (e.hdr if compact else e.payload) for c in containers if c not in untouched
               for e in c.entries if e.arch not in keep)
    print(f"bytes blanked: {gone:,}  fatbin bytes kept: {sum(c.hsize + c.size for c in containers) - gone:,}")


def main_trim(src, dst, keep, compact):
    orig = open(src, "rb").read()
    secs = elf_sections(orig)
    regions = [(secs[n][0], secs[n][0] + secs[n][1]) for n in FATBIN_SECTIONS if secs.get(n, (0, 0))[1]]
    if not regions:
        raise FormatError(f"no {' or '.join(FATBIN_SECTIONS)} section in {src}")
    print("fatbin sections:", ", ".join(f"{n} @{secs[n][0]:#x} +{secs[n][1]:,}" for n in FATBIN_SECTIONS if n in secs))
    buf = bytearray(orig)
    walked = blank(buf, regions, keep, compact)
    print(f".nvFatBinSegment wrappers checked: {check_wrappers(orig, secs, walked)}")
    # A fatbin header outside the walked sections is device code we did not
    # see: it stays intact (safe, just bigger) but deserves a warning.
    magic = CONTAINER.pack(FATBIN_MAGIC, 1, 16, 0)[:8]
    p = orig.find(magic)
    while p >= 0:
        if not any(a <= p < b for a, b in regions):
            print(f"warning: fatbin header outside the fatbin sections at {p:#x}", file=sys.stderr)
        p = orig.find(magic, p + 1)
    summarize(walked, keep, compact)
    if not any(e.arch in keep for cs, _ in walked for c in cs for e in c.entries):
        raise FormatError(f"no entry for the kept arch(s) {sorted(keep)}")
    tmp = dst + ".tmp"
    with open(tmp, "wb") as f:
        f.write(buf)
    del buf
    try:
        out = open(tmp, "rb").read()  # verify what reached the disk
        if elf_sections(out) != secs:
            raise FormatError("ELF section headers changed")
        verify(orig, out, regions, keep, compact)
        check_wrappers(out, secs, [walk(out, a, b) for a, b in regions])
    except BaseException:
        os.unlink(tmp)
        raise
    shutil.copymode(src, tmp)
    os.replace(tmp, dst)
    print(f"verified and wrote {dst} ({len(out):,} B)")


def self_test():
    """Synthetic containers with zero gaps, no ELF: runs anywhere, in CI."""
    def entry(kind, arch, payload, flags=0x11, hdr=64):
        pad = payload + bytes(-len(payload) % 8)
        return ENTRY.pack(kind, 0x101, hdr, len(pad), len(payload), 64 if hdr > 64 else 0, 8, 1,
                          arch, 0, 0, flags, 0, 4 * len(payload)) + bytes(hdr - 64) + pad

    def container(*entries):
        return CONTAINER.pack(FATBIN_MAGIC, 1, 16, sum(map(len, entries))) + b"".join(entries)

    c1 = container(entry(2, 75, b"\x7fELF-sm75"), entry(2, 90, b"\x28\xb5\x2f\xfd-zstd90", 0x108011))
    c2 = container(entry(1, 90, b".target sm_90", hdr=72), entry(2, 120, b"\x7fELF-sm120a", hdr=112))
    c3 = container(entry(2, 120, b"\x7fELF-only120"))
    blob = b"\xAA" * 8 + c1 + bytes(8) + c2 + c3 + bytes(16) + b"\xBB" * 8  # guards outside
    regions = [(8, len(blob) - 8)]
    for compact in (False, True):
        buf = bytearray(blob)
        (containers, gaps), = blank(buf, regions, {90}, compact)
        assert [c.off for c in containers] == [8, 8 + len(c1) + 8, 8 + len(c1) + 8 + len(c2)]
        assert [(e.kind, e.arch) for c in containers for e in c.entries] == \
            [(2, 75), (2, 90), (1, 90), (2, 120), (2, 120)] and gaps == 2
        verify(blob, bytes(buf), regions, {90}, compact)
        assert b"sm75" not in buf and b"sm120a" not in buf and b"zstd90" in buf and b"sm_90" in buf
        assert (b"only120" in buf) == compact  # compact leaves a container with nothing kept
        after, _ = walk(buf, *regions[0])
        assert [[e.arch for e in c.entries] for c in after] == \
            ([[90], [90], [120]] if compact else [[75, 90], [90, 120], [120]])
        summarize([(containers, gaps)], {90}, compact)
    for bad in (blob[:24] + b"\x07" + blob[25:],  # entry kind 7
                blob[:-24] + b"\x01" + blob[-23:],  # junk in the trailing gap
                blob[:21] + b"\xff" + blob[22:]):  # container size past the end
        try:
            walk(bad, 8, len(bad) - 8)
        except FormatError:
            continue
        raise AssertionError("a corrupt blob was accepted")
    print("self-test OK")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("inp", nargs="?", metavar="IN")
    ap.add_argument("out", nargs="?", metavar="OUT")
    ap.add_argument("--keep", action="append", default=[], help="arch to keep: sm_90, compute_90, 90")
    ap.add_argument("--compact", action="store_true", help="shrink containers to their kept entries")
    ap.add_argument("--self-test", action="store_true", help="check the walker on synthetic data")
    args = ap.parse_args()
    if args.self_test:
        return self_test()
    if not (args.inp and args.out and args.keep):
        ap.error("IN, OUT and at least one --keep are required")
    keep = set()
    for k in args.keep:  # the fatbin arch field has no a/f suffix: sm_90a -> 90
        m = re.fullmatch(r"(?:sm_|compute_)?(\d+)[af]?", k)
        if not m:
            ap.error(f"--keep {k!r}: expected an arch like sm_90")
        keep.add(int(m.group(1)))
    try:
        main_trim(args.inp, args.out, keep, args.compact)
    except FormatError as e:
        sys.exit(f"trim_fatbin: refusing to write {args.out}: {e}")


if __name__ == "__main__":
    main()
