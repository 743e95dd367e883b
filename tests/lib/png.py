#!/usr/bin/python3
"""PNG facts for the browser tests (tests/lib/browser.sh), standard library only.

  png.py FILE              prints "WIDTH HEIGHT" after checking the signature,
                           the IHDR chunk and every chunk's CRC
  png.py FILE X Y          prints the pixel at (X, Y) as "R G B"
  png.py FILE --colours    prints how many distinct RGB colours the image has

Exit 1 (the reason on stderr) when FILE is not a valid PNG. Decodes 8-bit
RGB/RGBA/grey, non-interlaced: what Chromium's Page.captureScreenshot writes.
"""
import struct
import sys
import zlib


class PNGError(Exception):
    pass


def read_png(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise PNGError("no PNG signature")
    pos, chunks = 8, []
    while pos < len(data):
        if pos + 12 > len(data):
            raise PNGError(f"truncated chunk at byte {pos}")
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if len(body) != length or pos + 12 + length > len(data):
            raise PNGError(f"chunk {kind!r} at byte {pos} runs past the end")
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        if zlib.crc32(kind + body) != crc:
            raise PNGError(f"chunk {kind!r} at byte {pos}: bad CRC")
        chunks.append((kind, body))
        pos += 12 + length
        if kind == b"IEND":
            break
    if not chunks or chunks[0][0] != b"IHDR" or len(chunks[0][1]) != 13:
        raise PNGError("the first chunk is not a 13-byte IHDR")
    if chunks[-1][0] != b"IEND":
        raise PNGError("no IEND chunk")
    w, h, depth, colour, _comp, _filt, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    if w == 0 or h == 0:
        raise PNGError(f"IHDR says {w}x{h}")
    return w, h, depth, colour, interlace, b"".join(b for k, b in chunks if k == b"IDAT")


def pixels(path):
    w, h, depth, colour, interlace, idat = read_png(path)
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(colour)
    if depth != 8 or channels is None or interlace:
        raise PNGError(f"cannot decode depth {depth} colour type {colour} interlace {interlace}")
    raw = zlib.decompress(idat)
    stride = w * channels
    if len(raw) != h * (stride + 1):
        raise PNGError(f"image data is {len(raw)} bytes, expected {h * (stride + 1)}")
    rows, prev = [], bytearray(stride)
    for y in range(h):
        ftype = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 255
            elif ftype == 2:
                line[i] = (line[i] + b) & 255
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 255
            elif ftype != 0:
                raise PNGError(f"row {y}: filter type {ftype}")
        rows.append(bytes(line))
        prev = line

    def rgb(x, y):
        px = rows[y][x * channels:(x + 1) * channels]
        return tuple(px[:3]) if channels >= 3 else (px[0],) * 3

    return w, h, rgb


def main(argv):
    try:
        if len(argv) == 2:
            w, h = read_png(argv[1])[:2]
            print(w, h)
        elif len(argv) == 3 and argv[2] == "--colours":
            w, h, rgb = pixels(argv[1])
            print(len({rgb(x, y) for y in range(h) for x in range(w)}))
        elif len(argv) == 4:
            w, h, rgb = pixels(argv[1])
            x, y = int(argv[2]), int(argv[3])
            if not (0 <= x < w and 0 <= y < h):
                raise PNGError(f"({x}, {y}) is outside {w}x{h}")
            print(*rgb(x, y))
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except (OSError, PNGError, zlib.error) as e:
        print(f"png: {argv[1]}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
