"""Just enough PNG for the screenshot checks, with the standard library only: decode Chromium's
8-bit RGB/RGBA screenshots to rows of pixels, crop, and encode (for smaller docs pictures)."""
import struct
import zlib


def read(path, max_rows=None):
    """(width, height, channels, rows): rows[y] is a bytes of width * channels samples. With
    max_rows, only the top rows are decoded (and height is their number)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG")
    pos, idat, width = 8, [], 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or colour not in (2, 6) or interlace:
                raise ValueError(f"{path}: only 8-bit RGB/RGBA, not interlaced")
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat.append(body)
    raw = zlib.decompress(b"".join(idat))
    stride = width * channels
    rows, prev = [], bytearray(stride)
    if max_rows is not None:
        height = min(height, max_rows)
    for y in range(height):
        start = y * (stride + 1)
        ftype, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        if ftype == 1:
            for i in range(channels, stride):
                line[i] = (line[i] + line[i - channels]) & 0xFF
        elif ftype == 2:
            # Byte-wise addition mod 256 of the whole row at once: add the low 7 bits of each
            # byte (no carry leaves a byte), then set each top bit to the xor of the three.
            a, b = int.from_bytes(line, "big"), int.from_bytes(prev, "big")
            low = int.from_bytes(b"\x7f" * stride, "big")
            top = int.from_bytes(b"\x80" * stride, "big")
            line = bytearray(((a & low) + (b & low) ^ ((a ^ b) & top)).to_bytes(stride, "big"))
        elif ftype == 3:
            for i in range(stride):
                left = line[i - channels] if i >= channels else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif ftype == 4:
            for i in range(stride):
                a = line[i - channels] if i >= channels else 0
                b, c = prev[i], prev[i - channels] if i >= channels else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, height, channels, rows


def write(path, width, height, channels, rows):
    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body +
                struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    raw = b"".join(b"\x00" + r for r in rows)
    colour = 2 if channels == 3 else 6
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw, 9)))
        f.write(chunk(b"IEND", b""))


def crop(image, x0, y0, x1, y1):
    width, height, channels, rows = image
    x1, y1 = min(x1, width), min(y1, height)
    out = [r[x0 * channels:x1 * channels] for r in rows[y0:y1]]
    return x1 - x0, y1 - y0, channels, out


if __name__ == "__main__":
    # python3 png.py in.png out.png x0 y0 x1 y1: a crop, to look at part of a screenshot.
    import sys
    img = read(sys.argv[1])
    write(sys.argv[2], *crop(img, *map(int, sys.argv[3:7])))
