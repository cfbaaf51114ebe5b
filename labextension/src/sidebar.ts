/**
 * The "Virtual folders" panel: one fetch of the folders, the view rebuilt from it, every action
 * through the server extension (the service decides; the panel greys out what it says is not
 * allowed), uploads and downloads straight to the service.
 */
import { Widget } from '@lumino/widgets';

import { ActionContext, folderAction } from './actions';
import { SidebarAPI } from './api';
import { confirm, formDialog } from './dialogs';
import { errorSentence } from './errors';
import {
  Folder,
  FoldersAnswer,
  Invitation,
  createState,
  filterFolders,
  groupFolders,
  hostNames,
  incoming,
  parseSize
} from './model';
import { PendingUpload } from './resume';
import { PickedFile, Uploads, download, droppedFiles, pickedFiles } from './transfers';
import { FileEntry } from './api';
import { TaskRow, fileList, folderList, h, invitationList, transferList } from './view';

/** ms between two repaints of the transfers while uploads report progress */
const TRANSFERS_EVERY = 200;

export interface SidebarHost {
  /** open a path (relative to the server's root) in the file browser */
  openPath(path: string): Promise<void>;
  /** the session is restarting: go to the hub's page that waits for it (next_url) */
  restarting(nextUrl: string | undefined): void;
  /** the tab's badge: the count of open invitations */
  badge(count: number): void;
}

export class FolderSidebar extends Widget {
  answer: FoldersAnswer | null = null;
  private _open: string | null = null;
  private _filter = '';
  private _view: 'folders' | 'trash' | 'invitations' = 'folders';
  private _trash: Folder[] = [];
  private _tasks = new Map<string, TaskRow>();
  private _error = '';
  private _notice = '';
  private _painted = false;
  private _transfersQueued = false;
  private _transfersPainted = -Infinity;
  private _fileInput: HTMLInputElement;
  private _folderInput: HTMLInputElement;
  private _inputTarget: { folder: { id: string; name: string }; pending?: PendingUpload } | null = null;
  private _els: Record<string, HTMLElement> = {};
  /** the open folder's files: its id, the path shown, the entries (null: loading) */
  private _files: { id: string; path: string; items: FileEntry[] | null; error: string } | null = null;

  constructor(
    readonly api: SidebarAPI,
    readonly uploads: Uploads,
    private _host: SidebarHost
  ) {
    super();
    this.id = 'backendai-hub-vfolders';
    this.addClass('bhub-Sidebar');
    this.title.caption = 'Virtual folders';
    this._fileInput = h('input', { type: 'file', multiple: true, className: 'bhub-FileInput', 'data-kind': 'files' }) as HTMLInputElement;
    this._folderInput = h('input', { type: 'file', multiple: true, className: 'bhub-FileInput', 'data-kind': 'folder' }) as HTMLInputElement;
    this._folderInput.setAttribute('webkitdirectory', '');
    for (const input of [this._fileInput, this._folderInput]) {
      input.addEventListener('change', () => this._picked(input));
    }
    const header = h(
      'div',
      { className: 'bhub-Sidebar-header' },
      h('h2', { className: 'bhub-Sidebar-title', text: 'Virtual folders' }),
      h(
        'div',
        { className: 'bhub-Sidebar-toolbar' },
        h('button', { className: 'jp-mod-styled', 'data-do': 'create', text: 'New folder', onclick: () => void this.create() }),
        (this._els.invButton = h(
          'button',
          { className: 'jp-mod-styled', 'data-do': 'invitations', onclick: () => this._show('invitations') },
          'Invitations ',
          (this._els.badge = h('span', { className: 'bhub-Badge', 'data-count': '0', text: '0' }))
        )),
        h('button', { className: 'jp-mod-styled', 'data-do': 'trash', text: 'Trash', onclick: () => this._show('trash') }),
        h('button', { className: 'jp-mod-styled', 'data-do': 'refresh', text: 'Refresh', title: 'Refresh', onclick: () => void this.refresh() })
      ),
      (this._els.filter = h('input', {
        className: 'bhub-Filter jp-mod-styled',
        type: 'search',
        placeholder: 'Filter folders by name',
        oninput: (e: Event) => {
          this._filter = (e.target as HTMLInputElement).value;
          this._renderBody();
        }
      }))
    );
    this._els.notice = h('div', { className: 'bhub-Notice', role: 'status' });
    this._els.error = h('div', { className: 'bhub-Error', role: 'alert' });
    this._els.body = h('div', { className: 'bhub-Sidebar-body' }, h('div', { className: 'bhub-Loading', text: 'Loading folders…' }));
    this._els.transfers = h('div', { className: 'bhub-Sidebar-transfers' });
    this.node.append(header, this._els.error, this._els.notice, this._els.body, this._els.transfers, this._fileInput, this._folderInput);
    this.uploads.onChange = () => this._queueTransfers();
    this.uploads.onDone = row => {
      if (this._files?.id === row.folder) {
        this._files = null; // listed again after the refresh
      }
      void this.refresh(false);
    };
    this._renderTransfers();
  }

  /** Fetch the folders (one request) and rebuild the view; the first time, mark the paint. */
  async refresh(showErrors = true): Promise<void> {
    const first = !this._painted;
    if (first) {
      performance.mark('bhub-sidebar:fetch-start');
    }
    try {
      this.answer = await this.api.folders();
      if (this._view === 'trash') {
        this._trash = (await this.api.trash()).items;
      }
      this._error = '';
    } catch (e) {
      if (showErrors || !this.answer) {
        this._error = errorSentence(e, 'load the folders');
      }
    }
    this._render();
    if (first && this.answer) {
      this._painted = true;
      requestAnimationFrame(() =>
        setTimeout(() => {
          performance.mark('bhub-sidebar:painted');
          performance.measure('bhub-sidebar:first-paint', 'bhub-sidebar:fetch-start', 'bhub-sidebar:painted');
          this.node.dataset.painted = 'true';
        }, 0)
      );
    }
  }

  private _show(view: 'folders' | 'trash' | 'invitations'): void {
    this._view = this._view === view ? 'folders' : view;
    if (this._view === 'trash') {
      this._els.body.replaceChildren(h('div', { className: 'bhub-Loading', text: 'Loading the trash…' }));
      void this.refresh();
    } else {
      this._render();
    }
  }

  private _render(): void {
    this._els.error.textContent = this._error;
    this._els.error.hidden = !this._error;
    this._els.notice.textContent = this._notice;
    this._els.notice.hidden = !this._notice;
    const count = incoming(this.answer).length;
    const create = createState(this.answer);
    const createButton = this.node.querySelector('button[data-do="create"]') as HTMLButtonElement;
    createButton.disabled = !!this.answer && !create.allowed;
    createButton.title = create.allowed || !this.answer ? 'Create a folder' : create.reason;
    this._els.badge.textContent = String(count);
    this._els.badge.dataset.count = String(count);
    this._host.badge(count);
    for (const b of Array.from(this.node.querySelectorAll('.bhub-Sidebar-toolbar button'))) {
      b.classList.toggle('bhub-mod-active', (b as HTMLElement).dataset.do === this._view);
    }
    this._renderBody();
  }

  private _renderBody(): void {
    const body = this._els.body;
    if (!this.answer) {
      body.replaceChildren(h('div', { className: 'bhub-Loading', text: this._error ? '' : 'Loading folders…' }));
      return;
    }
    if (this._view === 'invitations') {
      body.replaceChildren(
        h('h3', { className: 'bhub-Group-title', text: 'Invitations' }),
        invitationList(incoming(this.answer), (inv, accept) => void this.answerInvitation(inv, accept))
      );
      return;
    }
    if (this._view === 'trash') {
      body.replaceChildren(this._trashView());
      return;
    }
    const groups = groupFolders(filterFolders(this.answer.folders, this._filter));
    body.replaceChildren(
      folderList(groups, this._open, {
        select: name => {
          this._open = name;
          this._files = null;
          this._renderBody();
        },
        button: (f, id) => void this.button(f, id),
        drop: (f, data) => void this._drop(f, data)
      })
    );
    this._fillFiles();
  }

  /** The open folder's file list: fetched when it opens (and after uploads), kept across re-renders. */
  private _fillFiles(): void {
    const slot = this._els.body.querySelector('.bhub-Files') as HTMLElement | null;
    if (!slot) {
      return;
    }
    const id = slot.dataset.folder!;
    if (!this._files || this._files.id !== id) {
      this.listFiles(id, '');
      return;
    }
    const files = this._files;
    slot.replaceChildren(
      ...fileList(files.path, files.items, files.error, {
        open: path => this.listFiles(id, path),
        download: (path, directory) =>
          void download(this.api, id, path, directory).catch(e => {
            this._error = errorSentence(e, `download '${path}'`);
            this._render();
          })
      })
    );
  }

  listFiles(id: string, path: string): void {
    const files = { id, path, items: null as FileEntry[] | null, error: '' };
    this._files = files;
    this._fillFiles();
    this.api
      .files(id, path)
      .then(r => (files.items = r.items))
      .catch(e => (files.error = errorSentence(e, 'list the files')))
      .then(() => this._files === files && this._fillFiles());
  }

  private _trashView(): HTMLElement {
    const ul = h('ul', { className: 'bhub-Trash' });
    for (const f of this._trash) {
      ul.append(
        h(
          'li',
          { className: 'bhub-Folder', 'data-name': f.name },
          h('span', { className: 'bhub-Folder-name', text: f.name }),
          h('button', { className: 'jp-mod-styled', 'data-do': 'restore', text: 'Restore', onclick: () => void this._act(`restore '${f.name}'`, () => this.api.restore(f.id), `Restored '${f.name}'.`) }),
          h('button', {
            className: 'jp-mod-styled jp-mod-warn',
            'data-do': 'purge',
            text: 'Delete forever',
            onclick: async () => {
              if (await confirm('Delete forever', `Delete '${f.name}' and all its files for good? This cannot be undone.`, 'Delete forever')) {
                await this._act(`delete '${f.name}' forever`, () => this.api.purge(f.id), `Deleted '${f.name}' for good.`);
              }
            }
          })
        )
      );
    }
    return h('div', {}, h('h3', { className: 'bhub-Group-title', text: `Trash (${this._trash.length})` }), this._trash.length ? ul : h('div', { className: 'bhub-Group-empty', text: 'The trash is empty.' }));
  }

  /** Run a call; on success refresh, on failure show the service's sentence. */
  private async _act(doing: string, call: () => Promise<unknown>, done?: string): Promise<boolean> {
    try {
      await call();
      this._error = '';
      this._notice = done ?? '';
      await this.refresh();
      return true;
    } catch (e) {
      this._error = errorSentence(e, doing);
      this._notice = '';
      this._render();
      return false;
    }
  }

  async create(): Promise<void> {
    const hosts = this.answer ? hostNames(this.answer) : [];
    const modes = this.answer?.usage_modes?.length ? this.answer.usage_modes : ['general'];
    const v = await formDialog('New folder', [
      { name: 'name', label: 'Name', placeholder: 'e.g. datasets' },
      { name: 'host', label: 'Storage host', type: 'select', options: hosts.map(x => ({ value: x, label: x })) },
      { name: 'usage_mode', label: 'Usage mode', type: 'select', options: modes.map(x => ({ value: x, label: x })) },
      { name: 'quota', label: 'Quota', placeholder: 'e.g. 10 GiB (empty: the policy default)' },
      { name: 'cloneable', label: 'Cloneable', type: 'checkbox', value: false }
    ], 'Create');
    if (!v) {
      return;
    }
    let quota: number | null;
    try {
      quota = parseSize(String(v.quota));
    } catch (e) {
      this._error = errorSentence(e);
      this._render();
      return;
    }
    const req = { name: String(v.name).trim(), host: String(v.host) || undefined, usage_mode: String(v.usage_mode) || undefined,
      cloneable: !!v.cloneable, ...(quota !== null ? { quota } : {}) };
    if (await this._act(`create '${req.name}'`, () => this.api.create(req), `Created '${req.name}'.`)) {
      this._open = req.name;
      this._renderBody();
    }
  }

  async answerInvitation(inv: Invitation, accept: boolean): Promise<void> {
    const name = inv.vfolder_name;
    const ok = await this._act(`${accept ? 'accept' : 'decline'} the invitation to '${name}'`, () => this.api.answer(inv.id, accept),
      accept ? `You joined '${name}'.` : `Declined the invitation to '${name}'.`);
    if (ok && accept) {
      this._view = 'folders';
      this._open = name;
      this._render();
    }
  }

  /** A button of an open folder (view.DETAIL_BUTTONS). */
  async button(f: Folder, id: string): Promise<void> {
    return folderAction(this._actionContext(), f, id);
  }

  private _actionContext(): ActionContext {
    return {
      api: this.api,
      answer: this.answer,
      host: this._host,
      act: (doing, call, done) => this._act(doing, call, done),
      fail: message => {
        this._error = message;
        this._render();
      },
      notice: message => {
        this._error = '';
        this._notice = message;
        this._render();
      },
      opened: name => {
        this._open = name;
        this._renderBody();
      },
      pick: (folder, kind) => this.pick(folder, kind),
      clone: (folder, target, cloneable) => this._clone(folder, target, cloneable)
    };
  }

  private async _clone(f: Folder, target: string, cloneable: boolean): Promise<void> {
    const source = f.name;
    const key = `clone:${target}`;
    const task: TaskRow = { key, label: `Cloning ${source} → ${target}`, fraction: 0, state: 'running' };
    this._tasks.set(key, task);
    this._queueTransfers();
    let id: string;
    try {
      id = (await this.api.clone(f.id, target, { cloneable })).task.id;
    } catch (e) {
      task.state = 'failed';
      task.message = errorSentence(e, `clone '${source}'`);
      this._queueTransfers();
      return;
    }
    void this.refresh(false);
    for (;;) {
      await new Promise(r => setTimeout(r, 700));
      try {
        const t = await this.api.task(id);
        const total = t.total_bytes ?? 0;
        task.fraction = total > 0 ? Math.min(1, (t.copied_bytes ?? 0) / total) : null;
        task.state = t.status || 'running';
        if (t.status && t.status !== 'running' && t.status !== 'pending') {
          task.message = t.status === 'done' ? 'Done.' : errorSentence(t.message || 'the copy failed', `clone '${source}'`);
          if (t.status === 'done') {
            task.fraction = 1;
          }
          this._queueTransfers();
          void this.refresh(false);
          return;
        }
      } catch (e) {
        task.state = 'failed';
        task.message = errorSentence(e, `follow the clone of '${source}'`);
        this._queueTransfers();
        return;
      }
      this._queueTransfers();
    }
  }

  /** Open the file picker for an upload into `folder` (or to resume a pending upload). */
  pick(folder: { id: string; name: string }, kind: 'files' | 'folder', pending?: PendingUpload): void {
    this._inputTarget = { folder, pending };
    const input = kind === 'folder' ? this._folderInput : this._fileInput;
    input.multiple = !pending;
    input.value = '';
    input.click();
  }

  private _picked(input: HTMLInputElement): void {
    const target = this._inputTarget;
    const files = pickedFiles(input);
    input.value = '';
    if (!target || files.length === 0) {
      return;
    }
    if (target.pending) {
      this.uploads.resume(target.pending, files[0].file).catch(e => {
        this._error = errorSentence(e, 'resume the upload');
        this._render();
      });
    } else {
      this._startUploads(target.folder, files);
    }
  }

  private _startUploads(folder: { id: string; name: string }, files: PickedFile[]): void {
    for (const f of files) {
      const pending = this.uploads.store.find(folder.id, f.path);
      if (pending && this.uploads.store.match(pending, f.file)) {
        void this.uploads.resume(pending, f.file); // the same file again: continue, don't start over
      } else {
        void this.uploads.start(folder.id, folder.name, f.file, f.path);
      }
    }
  }

  private async _drop(f: Folder, data: DataTransfer): Promise<void> {
    if (!this.answer?.folders.find(x => x.id === f.id)?.actions?.upload?.allowed) {
      this._error = errorSentence(f.actions?.upload?.reason || `you may not upload to '${f.name}'`);
      this._render();
      return;
    }
    this._startUploads(f, await droppedFiles(data));
  }

  /** Repaint the transfers at most every TRANSFERS_EVERY ms: an upload's parts each report progress
   * many times a second, and the page shares the machine's CPU with the upload itself. */
  private _queueTransfers(): void {
    if (this._transfersQueued) {
      return;
    }
    this._transfersQueued = true;
    const wait = Math.max(0, this._transfersPainted + TRANSFERS_EVERY - performance.now());
    window.setTimeout(
      () =>
        requestAnimationFrame(() => {
          this._transfersQueued = false;
          this._transfersPainted = performance.now();
          this._renderTransfers();
        }),
      wait
    );
  }

  private _renderTransfers(): void {
    const active = new Set(Array.from(this.uploads.rows.values()).map(r => r.path + '\u0000' + r.folder));
    const pending = this.uploads.store.list().filter(p => {
      const row = Array.from(this.uploads.rows.values()).find(r => r.folder === p.folder && r.path === p.path);
      return !row && !active.has(p.path + '\u0000' + p.folder);
    });
    this._els.transfers.replaceChildren(
      transferList(Array.from(this.uploads.rows.values()), Array.from(this._tasks.values()), pending, {
        cancel: key => void this.uploads.cancel(key),
        resume: p => this.pick({ id: p.folder, name: p.folder_name || p.folder }, 'files', p),
        discard: p => void this.uploads.discard(p)
      })
    );
  }
}
