import { ResumeStore, fingerprint } from '../resume';

const file = { name: 'big.bin', size: 20 * 1024 * 1024, lastModified: 1700000000000 };

describe('ResumeStore (in jsdom localStorage)', () => {
  beforeEach(() => window.localStorage.clear());

  it('keeps a pending upload across instances (a page reload) and forgets it when done', () => {
    const a = new ResumeStore(window.localStorage, 'k');
    a.save({ upload_id: 'u1', folder: 'data', path: 'big.bin', size: file.size, fingerprint: fingerprint(file), offset: 0 });
    a.progress('u1', 1234);
    const b = new ResumeStore(window.localStorage, 'k');
    const [p] = b.list();
    expect(p).toMatchObject({ upload_id: 'u1', folder: 'data', path: 'big.bin', offset: 1234 });
    expect(b.find('data', 'big.bin')?.upload_id).toBe('u1');
    expect(b.find('data', 'other')).toBeUndefined();
    b.remove('u1');
    expect(new ResumeStore(window.localStorage, 'k').list()).toEqual([]);
    expect(window.localStorage.getItem('k')).toBeNull();
  });

  it('matches only the same file: name, size and date', () => {
    const s = new ResumeStore(window.localStorage, 'k');
    s.save({ upload_id: 'u1', folder: 'd', path: 'big.bin', size: file.size, fingerprint: fingerprint(file), offset: 0 });
    const p = s.list()[0];
    expect(s.match(p, file)).toBe(true);
    expect(s.match(p, { ...file, size: file.size - 1 })).toBe(false);
    expect(s.match(p, { ...file, lastModified: 1 })).toBe(false);
    expect(s.match(p, { ...file, name: 'other.bin' })).toBe(false);
  });

  it('keeps servers apart by key, replaces an entry saved twice', () => {
    const a = new ResumeStore(window.localStorage, 'server-a');
    const b = new ResumeStore(window.localStorage, 'server-b');
    const e = { upload_id: 'u1', folder: 'd', path: 'p', size: 1, fingerprint: 'f', offset: 0 };
    a.save(e);
    a.save({ ...e, offset: 1 });
    expect(a.list()).toHaveLength(1);
    expect(b.list()).toEqual([]);
  });

  it('reads broken or foreign data as no uploads, and forgets entries older than a week', () => {
    window.localStorage.setItem('k', '{not json');
    expect(new ResumeStore(window.localStorage, 'k').list()).toEqual([]);
    window.localStorage.setItem('k', JSON.stringify([{ upload_id: 5 }, null, 'x']));
    expect(new ResumeStore(window.localStorage, 'k').list()).toEqual([]);
    let now = 0;
    const s = new ResumeStore(window.localStorage, 'k', () => now);
    s.save({ upload_id: 'u', folder: 'd', path: 'p', size: 1, fingerprint: 'f', offset: 0 });
    now = 8 * 24 * 3600 * 1000;
    expect(s.list()).toEqual([]);
  });
});
