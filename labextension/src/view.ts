/**
 * The sidebar's DOM, built from data by plain functions (no framework: a thousand folders paint in
 * one go, a handful of nodes each; the details and their actions are built only for the open folder).
 */
import {
  ActionName,
  Folder,
  FolderGroup,
  Invitation,
  PERMISSION_TITLES,
  actionState,
  formatBytes,
  mountLabel,
  usage
} from './model';
import type { FileEntry } from './api';
import { percent, progressLabel } from './progress';
import type { PendingUpload } from './resume';
import type { UploadRow } from './transfers';

type Attrs = Record<string, string | number | boolean | null | undefined | ((e: any) => void)>;

/** createElement with attributes (on* are listeners) and children. */
export function h(tag: string, attrs: Attrs = {}, ...children: Array<Node | string | null | undefined | false>): HTMLElement {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) {
      continue;
    }
    if (typeof v === 'function') {
      el.addEventListener(k.slice(2).toLowerCase(), v);
    } else if (k === 'className') {
      el.className = String(v);
    } else if (k === 'text') {
      el.textContent = String(v);
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  for (const c of children) {
    if (c !== null && c !== undefined && c !== false) {
      el.append(c);
    }
  }
  return el;
}

/** The buttons of an open folder, in order: the action whose allowed/reason the server gives. */
export const DETAIL_BUTTONS: Array<{ id: string; label: string; action: ActionName; when?: (f: Folder) => boolean }> = [
  { id: 'open', label: 'Open in file browser', action: 'mount', when: f => !!f.mount?.mounted },
  { id: 'restart', label: 'Restart with it mounted', action: 'mount', when: f => !f.mount?.mounted },
  { id: 'upload-files', label: 'Upload files', action: 'upload' },
  { id: 'upload-folder', label: 'Upload a folder', action: 'upload' },
  { id: 'download', label: 'Download', action: 'download' },
  { id: 'rename', label: 'Rename', action: 'rename' },
  { id: 'invite', label: 'Invite', action: 'invite' },
  { id: 'share', label: 'Share with members', action: 'share', when: f => f.group === 'group' || !!f.group_name },
  { id: 'unshare', label: 'Unshare', action: 'share', when: f => f.group === 'group' || !!f.group_name },
  { id: 'kick', label: 'Remove a person', action: 'kick' },
  { id: 'clone', label: 'Clone', action: 'clone' },
  { id: 'leave', label: 'Leave', action: 'leave', when: f => f.group === 'shared' },
  { id: 'delete', label: 'Move to trash', action: 'delete' }
];

export interface ViewHandlers {
  select(name: string | null): void;
  button(folder: Folder, id: string): void;
  drop(folder: Folder, data: DataTransfer): void;
}

function usageBar(f: Folder): HTMLElement {
  const u = usage(f);
  const bar = h('div', { className: `bhub-Usage bhub-Usage-${u.level}`, title: u.label, 'aria-label': u.label });
  if (u.fraction !== null) {
    const fill = h('div', { className: 'bhub-Usage-fill' });
    fill.style.width = `${(u.fraction * 100).toFixed(1)}%`;
    bar.append(fill);
  }
  return bar;
}

/** One folder's row (the collapsed state): name, permission, mount mark, usage bar, host and mode. */
export function folderRow(f: Folder, open: boolean, handlers: ViewHandlers): HTMLElement {
  const mounted = !!f.mount?.mounted;
  const li = h(
    'li',
    {
      className: `bhub-Folder${open ? ' bhub-mod-open' : ''}${mounted ? ' bhub-mod-mounted' : ''}`,
      'data-name': f.name,
      'data-id': f.id,
      'data-group': f.group
    },
    h(
      'div',
      {
        className: 'bhub-Folder-head',
        role: 'button',
        tabindex: 0,
        'aria-expanded': open ? 'true' : 'false',
        onclick: () => handlers.select(open ? null : f.name)
      },
      h('span', { className: 'bhub-Folder-name', text: f.name, title: f.name }),
      h('span', { className: `bhub-Perm bhub-Perm-${f.permission}`, text: f.permission, title: PERMISSION_TITLES[f.permission] }),
      h('span', {
        className: `bhub-MountMark${mounted ? ' bhub-mod-on' : ''}`,
        text: mounted ? (f.mount?.mode === 'ro' ? 'mounted ro' : 'mounted rw') : '',
        title: mountLabel(f)
      })
    ),
    usageBar(f),
    h('div', {
      className: 'bhub-Folder-meta',
      text: [f.host, f.usage_mode, f.status && f.status !== 'ready' ? f.status : null, f.group_name, f.group !== 'mine' ? f.owner : null]
        .filter(Boolean)
        .join(' · ')
    })
  );
  li.addEventListener('dragover', e => {
    e.preventDefault();
    li.classList.add('bhub-mod-drop');
  });
  li.addEventListener('dragleave', () => li.classList.remove('bhub-mod-drop'));
  li.addEventListener('drop', e => {
    e.preventDefault();
    li.classList.remove('bhub-mod-drop');
    if (e.dataTransfer) {
      handlers.drop(f, e.dataTransfer);
    }
  });
  if (open) {
    li.append(folderDetail(f, handlers));
  }
  return li;
}

/** An open folder: its facts, then every action, greyed out with the server's reason when not allowed. */
export function folderDetail(f: Folder, handlers: ViewHandlers): HTMLElement {
  const u = usage(f);
  const facts = h(
    'dl',
    { className: 'bhub-Facts' },
    h('dt', { text: 'Permission' }),
    h('dd', { text: `${f.permission} (${PERMISSION_TITLES[f.permission]})` }),
    h('dt', { text: 'Usage' }),
    h('dd', { text: u.label }),
    h('dt', { text: 'Host' }),
    h('dd', { text: f.host || '?' }),
    h('dt', { text: 'Usage mode' }),
    h('dd', { text: f.usage_mode || 'general' }),
    h('dt', { text: 'This session' }),
    h('dd', { className: 'bhub-Facts-mount', text: mountLabel(f) })
  );
  if (f.owner && f.group !== 'mine') {
    facts.append(h('dt', { text: 'Owner' }), h('dd', { text: f.owner }));
  }
  if (f.cloneable !== undefined) {
    facts.append(h('dt', { text: 'Cloneable' }), h('dd', { text: f.cloneable ? 'yes' : 'no' }));
  }
  const buttons = h('div', { className: 'bhub-Actions' });
  const reasons = h('ul', { className: 'bhub-Reasons' });
  const seen = new Set<string>();
  for (const b of DETAIL_BUTTONS) {
    if (b.when && !b.when(f)) {
      continue;
    }
    const st = actionState(f, b.action);
    buttons.append(
      h('button', {
        className: 'bhub-Action jp-mod-styled',
        'data-action': b.id,
        disabled: !st.allowed,
        title: st.allowed ? b.label : st.reason,
        text: b.label,
        onclick: () => st.allowed && handlers.button(f, b.id)
      })
    );
    if (!st.allowed && !seen.has(st.reason)) {
      seen.add(st.reason);
      reasons.append(h('li', { 'data-action': b.action, text: `${b.label}: ${st.reason}` }));
    }
  }
  const drop = actionState(f, 'upload').allowed
    ? h('div', { className: 'bhub-DropHint', text: 'Drop files or folders here to upload them into this folder.' })
    : null;
  const files = actionState(f, 'download').allowed ? h('div', { className: 'bhub-Files', 'data-folder': f.id }) : null;
  return h('div', { className: 'bhub-Detail' }, facts, files, buttons, reasons.childElementCount ? reasons : null, drop);
}

/** The four groups with their folders (empty groups say so). */
export function folderList(groups: FolderGroup[], openName: string | null, handlers: ViewHandlers): DocumentFragment {
  const frag = document.createDocumentFragment();
  for (const g of groups) {
    const ul = h('ul', { className: 'bhub-Group-folders' });
    for (const f of g.folders) {
      ul.append(folderRow(f, f.name === openName, handlers));
    }
    frag.append(
      h(
        'section',
        { className: 'bhub-Group', 'data-group': g.key },
        h('h3', { className: 'bhub-Group-title', text: `${g.title} (${g.folders.length})` }),
        g.folders.length ? ul : h('div', { className: 'bhub-Group-empty', text: 'None.' })
      )
    );
  }
  return frag;
}

export function invitationList(
  invitations: Invitation[],
  answer: (inv: Invitation, accept: boolean) => void
): HTMLElement {
  if (invitations.length === 0) {
    return h('div', { className: 'bhub-Invitations bhub-Group-empty', text: 'No invitations.' });
  }
  return h(
    'ul',
    { className: 'bhub-Invitations' },
    ...invitations.map(inv =>
      h(
        'li',
        { className: 'bhub-Invitation', 'data-id': inv.id, 'data-folder': inv.vfolder_name },
        h('span', {
          className: 'bhub-Invitation-text',
          text: `${inv.inviter_email || inv.inviter || 'Someone'} invites you to '${inv.vfolder_name}' (${PERMISSION_TITLES[inv.permission] || inv.permission})`
        }),
        h('button', { className: 'jp-mod-styled jp-mod-accept', 'data-answer': 'accept', text: 'Accept', onclick: () => answer(inv, true) }),
        h('button', { className: 'jp-mod-styled', 'data-answer': 'decline', text: 'Decline', onclick: () => answer(inv, false) })
      )
    )
  );
}

/** A folder's files at one path: directories open, files download; '..' goes up. */
export function fileList(
  path: string,
  items: FileEntry[] | null,
  error: string,
  on: { open(path: string): void; download(path: string, directory: boolean): void }
): HTMLElement[] {
  const title = h('div', { className: 'bhub-Files-title', text: `Files in /${path}` });
  if (error) {
    return [title, h('div', { className: 'bhub-Files-error', text: error })];
  }
  if (items === null) {
    return [title, h('div', { className: 'bhub-Group-empty', text: 'Loading…' })];
  }
  const ul = h('ul', { className: 'bhub-Files-list' });
  if (path) {
    const up = path.split('/').slice(0, -1).join('/');
    ul.append(h('li', { className: 'bhub-File bhub-mod-dir', 'data-file': '..', text: '..', onclick: () => on.open(up) }));
  }
  for (const e of items) {
    const full = path ? `${path}/${e.name}` : e.name;
    const dir = e.type === 'directory' || e.type === 'dir';
    ul.append(
      h(
        'li',
        {
          className: `bhub-File${dir ? ' bhub-mod-dir' : ''}`,
          'data-file': e.name,
          title: dir ? `Open ${full}` : `Download ${full}`,
          onclick: () => (dir ? on.open(full) : on.download(full, false))
        },
        h('span', { className: 'bhub-File-name', text: dir ? `${e.name}/` : e.name }),
        h('span', { className: 'bhub-File-size', text: dir ? '' : formatBytes(e.size) })
      )
    );
  }
  if (!items.length) {
    ul.append(h('li', { className: 'bhub-Group-empty', text: 'No files yet.' }));
  }
  return [title, ul];
}

export interface TaskRow {
  key: string;
  label: string;
  fraction: number | null;
  state: string;
  message?: string;
}

/** The transfers: this page's uploads, clone tasks, and the uploads of an earlier page to resume. */
export function transferList(
  rows: UploadRow[],
  tasks: TaskRow[],
  pending: PendingUpload[],
  on: { cancel(key: string): void; resume(p: PendingUpload): void; discard(p: PendingUpload): void }
): HTMLElement {
  const list = h('ul', { className: 'bhub-Transfers-list' });
  for (const r of rows) {
    list.append(uploadRow(r, on.cancel));
  }
  for (const t of tasks) {
    const bar = h('div', { className: 'bhub-Progress' }, h('div', { className: 'bhub-Progress-fill' }));
    (bar.firstChild as HTMLElement).style.width = `${Math.round((t.fraction ?? 0) * 100)}%`;
    list.append(
      h(
        'li',
        { className: `bhub-Transfer bhub-Task bhub-mod-${t.state}`, 'data-key': t.key },
        h('div', { className: 'bhub-Transfer-name', text: t.label }),
        bar,
        h('div', {
          className: 'bhub-Transfer-status',
          text: t.message || (t.fraction === null ? t.state : `${Math.round(t.fraction * 100)} %`)
        })
      )
    );
  }
  for (const p of pending) {
    list.append(
      h(
        'li',
        { className: 'bhub-Transfer bhub-Pending', 'data-upload': p.upload_id, 'data-path': p.path },
        h('div', { className: 'bhub-Transfer-name', text: `${p.folder_name || p.folder}/${p.path}` }),
        h('div', {
          className: 'bhub-Transfer-status',
          text: `Interrupted at ${percent(p.offset, p.size)} %. Pick the same file again to resume.`
        }),
        h('button', { className: 'jp-mod-styled jp-mod-accept', 'data-do': 'resume', text: 'Resume…', onclick: () => on.resume(p) }),
        h('button', { className: 'jp-mod-styled', 'data-do': 'discard', text: 'Discard', onclick: () => on.discard(p) })
      )
    );
  }
  return h('div', { className: 'bhub-Transfers' }, list.childElementCount ? h('h3', { className: 'bhub-Group-title', text: 'Transfers' }) : null, list);
}

export function uploadRow(r: UploadRow, cancel: (key: string) => void): HTMLElement {
  const fill = h('div', { className: 'bhub-Progress-fill' });
  fill.style.width = `${percent(r.sent, r.size)}%`;
  const status =
    r.state === 'done'
      ? `Done: ${progressLabel(r.size, r.size, r.speed)}`
      : r.message || (r.state === 'starting' ? 'Starting…' : progressLabel(r.sent, r.size, r.speed));
  return h(
    'li',
    { className: `bhub-Transfer bhub-Upload bhub-mod-${r.state}`, 'data-key': r.key, 'data-path': r.path, 'data-state': r.state },
    h('div', { className: 'bhub-Transfer-name', text: `${r.folderName}/${r.path}`, title: `${r.folderName}/${r.path}` }),
    h('div', { className: 'bhub-Progress', role: 'progressbar', 'aria-valuenow': percent(r.sent, r.size), 'aria-valuemin': 0, 'aria-valuemax': 100 }, fill),
    h('div', { className: 'bhub-Transfer-status', text: status }),
    r.state === 'uploading' || r.state === 'retrying' || r.state === 'starting'
      ? h('button', { className: 'jp-mod-styled', 'data-do': 'cancel', text: 'Cancel', onclick: () => cancel(r.key) })
      : null
  );
}
