import { parseIdx } from '../../src/core/idx';

function idx(shape: number[], values: number[]): Uint8Array {
  const header = new Uint8Array(4 + 4 * shape.length);
  header.set([0, 0, 8, shape.length]);
  const view = new DataView(header.buffer);
  shape.forEach((s, i) => view.setUint32(4 + 4 * i, s, false));
  return new Uint8Array([...header, ...values]);
}

describe('parseIdx', () => {
  it('reads the big-endian header and the bytes', () => {
    const parsed = parseIdx(idx([2, 3], [1, 2, 3, 4, 5, 6]));
    expect(parsed.shape).toEqual([2, 3]);
    expect([...parsed.data]).toEqual([1, 2, 3, 4, 5, 6]);
    // 300 > 255 checks that sizes are read as 32-bit big-endian, not as one byte
    expect(parseIdx(idx([300], new Array(300).fill(7))).shape).toEqual([300]);
  });

  it('names the file and the problem', () => {
    expect(() => parseIdx(new Uint8Array([1, 2, 3, 4]), 'x.idx')).toThrow('x.idx is not an IDX file (bad magic number)');
    expect(() => parseIdx(idx([2, 3], [1, 2, 3]), 'y.idx')).toThrow('y.idx should hold 18 bytes for shape [2, 3] but holds 15');
    const wrongType = idx([1], [0]);
    wrongType[2] = 0x0d;
    expect(() => parseIdx(wrongType, 'z.idx')).toThrow('z.idx holds IDX type 0xd; only unsigned bytes (0x08) are read');
  });
});
