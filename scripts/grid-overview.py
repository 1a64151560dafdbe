#!/usr/bin/env python3
"""One overview PNG from the per-class grids of `vtok ar eval-generation --out DIR`.

Takes the first row (the first 10 samples, each labelled with the class the
classifier predicted) of every DIR/<class>.png and stacks them, one row per
prompted class, with the prompted class written on the left.

    /usr/bin/python3 scripts/grid-overview.py DIR OUT.png

Layout of vtok's grids (src/io/image-write.ts writeImageGrid): 2 px gaps,
cells of the image height plus a 12 px label strip.
"""
import os
import sys

from PIL import Image, ImageDraw


def main() -> None:
    src, out = sys.argv[1], sys.argv[2]
    files = sorted(f for f in os.listdir(src) if f.endswith('.png') and f != os.path.basename(out))
    if not files:
        sys.exit(f'no class grids (*.png) in {src}')
    rows = []
    for f in files:
        im = Image.open(os.path.join(src, f)).convert('RGB')
        cell = 32 + 12 + 2  # image, label strip, gap
        rows.append((os.path.splitext(f)[0].replace('_', '/' if f.startswith('T-shirt') else ' '), im.crop((0, 0, im.width, 2 + cell))))
    margin = 84
    width = margin + max(r.width for _, r in rows)
    height = sum(r.height for _, r in rows)
    sheet = Image.new('RGB', (width, height), (0, 0, 0))
    draw = ImageDraw.Draw(sheet)
    y = 0
    for name, r in rows:
        sheet.paste(r, (margin, y))
        draw.text((4, y + r.height // 2 - 6), name, fill=(255, 255, 255))
        y += r.height
    sheet.save(out, optimize=True)


if __name__ == '__main__':
    main()
