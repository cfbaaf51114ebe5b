/**
 * The sidebar's data (as the server extension answers GET backendai-hub/api/folders) and the pure
 * logic over it: grouping, the state of each action, usage and mount wording. No DOM, no JupyterLab.
 */

export type Group = 'mine' | 'group' | 'shared' | 'public';
export type Permission = 'ro' | 'rw' | 'wd';

/** What the service says of one action on one folder (it checks again when the action is taken). */
export interface ActionState {
  allowed: boolean;
  reason?: string | null;
}

export const ACTIONS = [
  'rename',
  'delete',
  'invite',
  'share',
  'leave',
  'kick',
  'clone',
  'upload',
  'download',
  'mount'
] as const;
export type ActionName = (typeof ACTIONS)[number];

export interface Mount {
  mounted: boolean;
  path?: string | null; // /home/work/<name>
  mode?: 'ro' | 'rw' | null;
  /** the path relative to the server's root directory (for the file browser) */
  browser_path?: string | null;
}

export interface Folder {
  id: string;
  name: string;
  group: Group;
  group_name?: string | null;
  owner?: string | null;
  permission: Permission;
  host?: string | null;
  usage_mode?: string | null;
  quota_bytes?: number | null;
  used_bytes?: number | null;
  cloneable?: boolean;
  status?: string;
  mount?: Mount;
  actions?: Partial<Record<ActionName, ActionState>>;
}

export interface Invitation {
  id: string;
  vfolder_name: string;
  inviter_email?: string;
  inviter?: string;
  permission: Permission;
  created_at?: string;
}

export interface FoldersAnswer {
  me?: { username?: string; email?: string; server?: string; home?: string };
  folders: Folder[];
  invitations?: { incoming?: Invitation[]; outgoing?: Invitation[] };
  hosts?: Array<string | { name: string; allowed?: boolean; default?: boolean }>;
  usage_modes?: string[];
  can_create?: ActionState;
}

/** The invitations waiting for the user's answer. */
export function incoming(answer: FoldersAnswer | null): Invitation[] {
  return answer?.invitations?.incoming ?? [];
}

/** May the user create a folder, and if not, why (deny by default). */
export function createState(answer: FoldersAnswer | null): { allowed: boolean; reason: string } {
  const c = answer?.can_create;
  if (!c) {
    return { allowed: false, reason: 'The server did not say that you may create folders.' };
  }
  return c.allowed ? { allowed: true, reason: '' } : { allowed: false, reason: sentence(c.reason || 'You may not create folders.') };
}

export const GROUP_TITLES: Record<Group, string> = {
  mine: 'My folders',
  group: "My groups' folders",
  shared: 'Shared with me',
  public: 'Public'
};

export const GROUP_ORDER: Group[] = ['mine', 'group', 'shared', 'public'];

export interface FolderGroup {
  key: Group;
  title: string;
  folders: Folder[];
}

/** The folders in the four groups, in that order, each sorted by name; empty groups are kept. */
export function groupFolders(folders: Folder[]): FolderGroup[] {
  const by: Record<Group, Folder[]> = { mine: [], group: [], shared: [], public: [] };
  for (const f of folders) {
    (by[f.group] ?? by.shared).push(f);
  }
  return GROUP_ORDER.map(key => ({
    key,
    title: GROUP_TITLES[key],
    folders: by[key].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  }));
}

const VERBS: Record<ActionName, string> = {
  rename: 'rename',
  delete: 'delete',
  invite: 'invite people to',
  share: 'share',
  leave: 'leave',
  kick: 'remove people from',
  clone: 'clone',
  upload: 'upload to',
  download: 'download from',
  mount: 'mount'
};

/**
 * Whether the action is allowed, and the sentence that says why not. Deny by default: an action the
 * server did not describe is greyed out (the service checks every action again anyway).
 */
export function actionState(folder: Folder, action: ActionName): { allowed: boolean; reason: string } {
  const got = folder.actions?.[action];
  if (!got) {
    return { allowed: false, reason: `The server did not say that you may ${VERBS[action]} '${folder.name}'.` };
  }
  if (got.allowed) {
    return { allowed: true, reason: '' };
  }
  return { allowed: false, reason: sentence(got.reason || `You may not ${VERBS[action]} '${folder.name}'.`) };
}

/** A server reason as a sentence: capital first letter, final full stop. */
export function sentence(text: string): string {
  const t = text.trim();
  if (!t) {
    return t;
  }
  const first = t[0].toUpperCase() + t.slice(1);
  return /[.!?]$/.test(first) ? first : `${first}.`;
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** 1536 -> "1.5 KiB"; binary units, three significant digits at most. */
export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !isFinite(n)) {
    return '?';
  }
  let v = Math.max(0, n);
  let i = 0;
  while (v >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  const digits = i === 0 ? 0 : v >= 100 ? 0 : v >= 10 ? 1 : 2;
  return `${v.toFixed(digits).replace(/\.0+$|(\.\d*?[1-9])0+$/, '$1')} ${UNITS[i]}`;
}

export interface Usage {
  /** 0..1 of the quota, null without a quota */
  fraction: number | null;
  label: string;
  /** ok below 80 %, warn below 100 %, full at or past the quota */
  level: 'ok' | 'warn' | 'full';
}

export function usage(folder: Folder): Usage {
  const quota = folder.quota_bytes;
  if (folder.used_bytes === null || folder.used_bytes === undefined) {
    // a big tree is measured in the background: the next refresh has it
    const of = quota && quota > 0 ? ` (quota ${formatBytes(quota)})` : '';
    return { fraction: null, label: `Usage not measured yet${of}`, level: 'ok' };
  }
  const used = folder.used_bytes;
  if (!quota || quota <= 0) {
    return { fraction: null, label: `${formatBytes(used)} used, no quota`, level: 'ok' };
  }
  const fraction = Math.min(1, used / quota);
  const level = used >= quota ? 'full' : fraction >= 0.8 ? 'warn' : 'ok';
  return { fraction, label: `${formatBytes(used)} of ${formatBytes(quota)} (${Math.round(fraction * 100)} %)`, level };
}

export const PERMISSION_TITLES: Record<Permission, string> = {
  ro: 'read-only',
  rw: 'read-write',
  wd: 'read-write-delete'
};

/** The mount state in this session, as the row says it. */
export function mountLabel(folder: Folder): string {
  const m = folder.mount;
  if (m?.mounted) {
    const mode = m.mode === 'ro' ? 'read-only' : 'read-write';
    return `Mounted at ${m.path || `/home/work/${folder.name}`} (${mode})`;
  }
  return 'Not mounted in this session';
}

/** Where the file browser opens a mounted folder: relative to the server's root. */
export function browsePath(folder: Folder): string | null {
  const m = folder.mount;
  if (!m?.mounted) {
    return null;
  }
  if (m.browser_path !== undefined && m.browser_path !== null) {
    return m.browser_path;
  }
  const path = m.path || `/home/work/${folder.name}`;
  return path.replace(/^\/home\/work\/?/, '');
}

/** The folders whose names contain the filter (case-insensitive). */
export function filterFolders(folders: Folder[], text: string): Folder[] {
  const t = text.trim().toLowerCase();
  return t ? folders.filter(f => f.name.toLowerCase().includes(t)) : folders;
}

/** The host names of the answer (strings or objects), default first. */
export function hostNames(answer: FoldersAnswer): string[] {
  const hosts = (answer.hosts ?? []).map(h => (typeof h === 'string' ? { name: h } : h));
  return hosts
    .filter(h => (h as { allowed?: boolean }).allowed !== false)
    .sort((a, b) => Number(!!(b as { default?: boolean }).default) - Number(!!(a as { default?: boolean }).default))
    .map(h => h.name);
}

/** Parses "10g", "512 MiB", "1.5GB", "1048576" into bytes; null for empty (no quota); throws otherwise. */
export function parseSize(text: string): number | null {
  const t = text.trim();
  if (!t) {
    return null;
  }
  const m = /^(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b?)$/i.exec(t);
  if (!m) {
    throw new Error(`Quota: '${text}' is not a size (write e.g. 10 GiB, 512m or 1073741824).`);
  }
  const power = ' kmgtp'.indexOf((m[2] || ' ').toLowerCase());
  return Math.round(parseFloat(m[1]) * Math.pow(1024, power));
}
