import {
  Folder,
  actionState,
  createState,
  incoming,
  browsePath,
  filterFolders,
  formatBytes,
  groupFolders,
  hostNames,
  mountLabel,
  parseSize,
  sentence,
  usage
} from '../model';

const folder = (name: string, group: Folder['group'], extra: Partial<Folder> = {}): Folder => ({
  id: name,
  name,
  group,
  permission: 'rw',
  ...extra
});

describe('groupFolders', () => {
  it('puts folders in mine, groups, shared, public order, each sorted by name, empty groups kept', () => {
    const groups = groupFolders([
      folder('zeta', 'mine'),
      folder('pub', 'public'),
      folder('alpha', 'mine'),
      folder('team', 'group'),
      folder('from-bob', 'shared')
    ]);
    expect(groups.map(g => g.key)).toEqual(['mine', 'group', 'shared', 'public']);
    expect(groups.map(g => g.folders.map(f => f.name))).toEqual([['alpha', 'zeta'], ['team'], ['from-bob'], ['pub']]);
    expect(groupFolders([]).every(g => g.folders.length === 0)).toBe(true);
    expect(groups[1].title).toBe("My groups' folders");
  });

  it('files a folder of an unknown group under shared rather than losing it', () => {
    const groups = groupFolders([folder('odd', 'weird' as Folder['group'])]);
    expect(groups.find(g => g.key === 'shared')!.folders.map(f => f.name)).toEqual(['odd']);
  });

  it('groups a thousand folders fast enough for the first paint', () => {
    const many = Array.from({ length: 1000 }, (_, i) => folder(`f${i}`, (['mine', 'group', 'shared', 'public'] as const)[i % 4]));
    const t = Date.now();
    const groups = groupFolders(many);
    expect(groups.reduce((n, g) => n + g.folders.length, 0)).toBe(1000);
    expect(Date.now() - t).toBeLessThan(500); // a sanity bound, the benchmark measures the real paint
  });
});

describe('actionState', () => {
  it('is allowed only when the server says so', () => {
    const f = folder('d', 'shared', {
      actions: { rename: { allowed: true }, delete: { allowed: false, reason: "you hold 'ro' on 'd'; deleting needs 'wd'" } }
    });
    expect(actionState(f, 'rename')).toEqual({ allowed: true, reason: '' });
    expect(actionState(f, 'delete')).toEqual({ allowed: false, reason: "You hold 'ro' on 'd'; deleting needs 'wd'." });
  });

  it('denies by default an action the server did not describe, and says so', () => {
    const s = actionState(folder('d', 'mine'), 'upload');
    expect(s.allowed).toBe(false);
    expect(s.reason).toBe("The server did not say that you may upload to 'd'.");
  });

  it('gives a sentence when the server denies without a reason', () => {
    expect(actionState(folder('d', 'mine', { actions: { kick: { allowed: false } } }), 'kick').reason).toBe(
      "You may not remove people from 'd'."
    );
  });
});

describe('usage and sizes', () => {
  it('formats bytes in binary units', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1023)).toBe('1023 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(20 * 1024 * 1024)).toBe('20 MiB');
    expect(formatBytes(1024 ** 3 * 1.25)).toBe('1.25 GiB');
    expect(formatBytes(null)).toBe('?');
  });

  it('measures usage against the quota with a level', () => {
    expect(usage(folder('a', 'mine', { used_bytes: 512, quota_bytes: 1024 }))).toEqual({
      fraction: 0.5,
      label: '512 B of 1 KiB (50 %)',
      level: 'ok'
    });
    expect(usage(folder('a', 'mine', { used_bytes: 900, quota_bytes: 1000 })).level).toBe('warn');
    const full = usage(folder('a', 'mine', { used_bytes: 1200, quota_bytes: 1000 }));
    expect([full.level, full.fraction]).toEqual(['full', 1]);
    expect(usage(folder('a', 'mine', { used_bytes: null, quota_bytes: 1024 }))).toEqual({
      fraction: null,
      label: 'Usage not measured yet (quota 1 KiB)',
      level: 'ok'
    });
    expect(usage(folder('a', 'mine', { used_bytes: 5, quota_bytes: null }))).toEqual({
      fraction: null,
      label: '5 B used, no quota',
      level: 'ok'
    });
  });

  it('parses quota sizes and refuses what is no size with a sentence', () => {
    expect(parseSize('')).toBeNull();
    expect(parseSize('1048576')).toBe(1048576);
    expect(parseSize('10g')).toBe(10 * 1024 ** 3);
    expect(parseSize('512 MiB')).toBe(512 * 1024 ** 2);
    expect(parseSize('1.5GB')).toBe(1.5 * 1024 ** 3);
    expect(() => parseSize('lots')).toThrow("Quota: 'lots' is not a size");
  });
});

describe('mount state', () => {
  it('says where and how a folder is mounted in this session', () => {
    const f = folder('data', 'mine', { mount: { mounted: true, path: '/home/work/data', mode: 'ro' } });
    expect(mountLabel(f)).toBe('Mounted at /home/work/data (read-only)');
    expect(browsePath(f)).toBe('data');
    expect(mountLabel(folder('x', 'mine', { mount: { mounted: false } }))).toBe('Not mounted in this session');
    expect(browsePath(folder('x', 'mine'))).toBeNull();
    expect(browsePath(folder('x', 'mine', { mount: { mounted: true, browser_path: 'vf/x' } }))).toBe('vf/x');
  });
});

describe('the overview', () => {
  it('reads incoming invitations and whether the user may create, denying by default', () => {
    const inv = { id: 'i', vfolder_name: 'd', permission: 'ro' as const };
    expect(incoming({ folders: [], invitations: { incoming: [inv], outgoing: [] } })).toEqual([inv]);
    expect(incoming(null)).toEqual([]);
    expect(createState({ folders: [], can_create: { allowed: true } }).allowed).toBe(true);
    expect(createState({ folders: [], can_create: { allowed: false, reason: "keypair policy 'small' allows 2 vfolders, 2 exist" } })).toEqual({
      allowed: false,
      reason: "Keypair policy 'small' allows 2 vfolders, 2 exist."
    });
    expect(createState({ folders: [] }).allowed).toBe(false);
  });
});

describe('small helpers', () => {
  it('makes sentences', () => {
    expect(sentence('quota full')).toBe('Quota full.');
    expect(sentence('Done!')).toBe('Done!');
    expect(sentence('  ')).toBe('');
  });
  it('filters by name, case-insensitive', () => {
    const all = [folder('Data', 'mine'), folder('models', 'mine')];
    expect(filterFolders(all, 'da').map(f => f.name)).toEqual(['Data']);
    expect(filterFolders(all, ' ')).toHaveLength(2);
  });
  it('lists allowed hosts, the default first', () => {
    expect(
      hostNames({ folders: [], hosts: [{ name: 'a' }, { name: 'b', default: true }, { name: 'c', allowed: false }] })
    ).toEqual(['b', 'a']);
    expect(hostNames({ folders: [], hosts: ['local'] })).toEqual(['local']);
  });
});
