import { PART_MIN, grantParts, partsFor } from '../transfers';

describe('how a file is split into parts', () => {
  it('sends small files as one request and large ones as up to `parallel` parts of PART_MIN or more', () => {
    expect(partsFor(0, 4)).toBe(1);
    expect(partsFor(PART_MIN * 2 - 1, 4)).toBe(1);
    expect(partsFor(PART_MIN * 2, 4)).toBe(2);
    expect(partsFor(20 * 1024 * 1024, 4)).toBe(2);
    expect(partsFor(1 << 30, 4)).toBe(4);
    expect(partsFor(1 << 30, 1)).toBe(1);
    expect(partsFor(1 << 30, 16)).toBe(16);
  });

  it("takes the grant's parts, or the whole file at the grant's URL from its offset", () => {
    const parts = [
      { upload_id: 'a', url: '/a', start: 0, end: 4, offset: 4 },
      { upload_id: 'b', url: '/b', start: 4, end: 6, offset: 1 }
    ];
    expect(grantParts({ upload_id: 'f', url: '/a', parts }, 6)).toBe(parts);
    expect(grantParts({ upload_id: 'f', url: '/f', offset: 3 }, 9)).toEqual([
      { upload_id: 'f', url: '/f', start: 0, end: 9, offset: 3 }
    ]);
    expect(grantParts({ upload_id: 'f', url: '/f', parts: [] }, 9)[0].offset).toBe(0);
  });
});
