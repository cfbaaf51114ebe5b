/**
 * Uploads straight from the browser to the service's tus endpoint with a short-lived grant (never
 * through this session's server), resumable after a network drop (tus retries from the server's
 * offset) and after a page reload (the ResumeStore; the user picks the file again); downloads by the
 * service's short-lived URL.
 *
 * A large file goes as several tus partial uploads side by side (the grant's `parts`, each a byte
 * range with its own URL; the service joins them when the last one ends): one request is limited by
 * the browser's own upload pipeline well below what the link and the service take.
 */
import * as tus from 'tus-js-client';

import { SidebarAPI, UploadGrant, UploadPart } from './api';
import { errorSentence } from './errors';
import { SpeedMeter } from './progress';
import { PendingUpload, ResumeStore, fingerprint } from './resume';

export type UploadState = 'starting' | 'uploading' | 'retrying' | 'done' | 'failed' | 'cancelled';

export interface UploadRow {
  key: string;
  /** the folder's id, and its name (shown) */
  folder: string;
  folderName: string;
  path: string;
  size: number;
  sent: number;
  speed: number;
  state: UploadState;
  message?: string;
  started: number;
  finished?: number;
}

export interface UploadOptions {
  /** bytes per PATCH; Infinity: one request per part (the fastest; a dropped one resumes at the offset) */
  chunkSize?: number;
  retryDelays?: number[];
  /** requests side by side for one large file (the service may grant fewer); 1: one request */
  parallel?: number;
}

/** The smallest part a file is split into: smaller files go as one request. */
export const PART_MIN = 8 * 1024 * 1024;

/** How many parts to ask for, for a file of `size` bytes: at most `parallel`, none under PART_MIN. */
export function partsFor(size: number, parallel: number): number {
  return Math.max(1, Math.min(Math.floor(parallel), Math.floor(size / PART_MIN)));
}

/** What a grant's parts are: its own list, or the whole file as one part at the grant's URL. */
export function grantParts(grant: UploadGrant, size: number): UploadPart[] {
  if (grant.parts && grant.parts.length > 0) {
    return grant.parts;
  }
  return [{ upload_id: grant.upload_id, url: grant.url, start: 0, end: size, offset: grant.offset ?? 0 }];
}

/** A file with the path it goes to inside the folder. */
export interface PickedFile {
  file: File;
  path: string;
}

let counter = 0;

export class Uploads {
  readonly rows = new Map<string, UploadRow>();
  /** per row: its running tus uploads (one per part), the upload's id, and which run is current */
  private _uploads = new Map<string, { uploads: tus.Upload[]; uploadId: string | null; run: number }>();
  private _meters = new Map<string, SpeedMeter>();
  /** called on every change (progress included), with the row that changed */
  onChange: (row: UploadRow | null) => void = () => undefined;
  /** called when an upload finishes (the folder's usage changed) */
  onDone: (row: UploadRow) => void = () => undefined;

  constructor(
    private _api: SidebarAPI,
    readonly store: ResumeStore,
    private _options: UploadOptions = {}
  ) {}

  /** Upload each picked file into the folder (at once, side by side). */
  async start(folder: string, folderName: string, file: File, path: string): Promise<UploadRow> {
    const row = this._row(folder, folderName, path, file.size);
    try {
      const grant = await this._api.grant(folder, path, file.size, partsFor(file.size, this.parallel));
      this.store.save({
        upload_id: grant.upload_id,
        folder,
        folder_name: folderName,
        path,
        size: file.size,
        fingerprint: fingerprint(file),
        offset: 0
      });
      this._run(row, file, grant, 0);
    } catch (e) {
      this._fail(row, errorSentence(e, `start uploading ${path}`));
    }
    return row;
  }

  /** Continue an upload of an earlier page with the file the user picked again. */
  async resume(pending: PendingUpload, file: File): Promise<UploadRow> {
    const row = this._row(pending.folder, pending.folder_name || pending.folder, pending.path, pending.size);
    row.sent = pending.offset;
    if (!this.store.match(pending, file)) {
      this._fail(
        row,
        `'${file.name}' is not the file this upload was started with (its size or date differ): pick the same file.`
      );
      this.rows.delete(row.key);
      throw new Error(row.message);
    }
    try {
      const grant = await this._api.regrant(pending.folder, pending.upload_id);
      row.sent = grant.offset ?? row.sent;
      this._run(row, file, grant, 0);
    } catch (e) {
      this._fail(row, errorSentence(e, `resume uploading ${pending.path}`));
    }
    return row;
  }

  async cancel(key: string): Promise<void> {
    const row = this.rows.get(key);
    const u = this._uploads.get(key);
    if (!row || !u || row.state === 'done') {
      return;
    }
    row.state = 'cancelled';
    row.message = 'Cancelled.';
    u.run++;
    await Promise.all(u.uploads.map(up => up.abort(false)));
    if (u.uploadId) {
      this.store.remove(u.uploadId);
      try {
        await this._api.cancelUpload(row.folder, u.uploadId);
      } catch (e) {
        row.message = errorSentence(e, 'cancel the upload on the server');
      }
    }
    this.onChange(row);
  }

  /** Forget the upload of an earlier page (the server drops its part too). */
  async discard(pending: PendingUpload): Promise<void> {
    this.store.remove(pending.upload_id);
    try {
      await this._api.cancelUpload(pending.folder, pending.upload_id);
    } catch {
      // it may be gone already
    }
    this.onChange(null);
  }

  clearFinished(): void {
    for (const [key, row] of this.rows) {
      if (row.state === 'done' || row.state === 'cancelled' || row.state === 'failed') {
        this.rows.delete(key);
        this._uploads.delete(key);
      }
    }
    this.onChange(null);
  }

  private _row(folder: string, folderName: string, path: string, size: number): UploadRow {
    const key = `u${++counter}`;
    const row: UploadRow = { key, folder, folderName, path, size, sent: 0, speed: 0, state: 'starting', started: Date.now() };
    this.rows.set(key, row);
    this._uploads.set(key, { uploads: [], uploadId: null, run: 0 });
    this._meters.set(key, new SpeedMeter());
    this.onChange(row);
    return row;
  }

  private _fail(row: UploadRow, message: string): void {
    row.state = 'failed';
    row.message = message;
    row.speed = 0;
    this.onChange(row);
  }

  /** Requests side by side for one large file (the `uploadParts` setting). */
  get parallel(): number {
    return this._options.parallel ?? 4;
  }
  set parallel(value: number) {
    this._options.parallel = value;
  }

  /** One tus run per unfinished part of the grant; a refused (expired) grant is renewed up to three
   * times, and the parts go on from where the server says. */
  private _run(row: UploadRow, file: File, grant: UploadGrant, regrants: number): void {
    const slot = this._uploads.get(row.key)!;
    slot.uploadId = grant.upload_id;
    const run = ++slot.run;
    slot.uploads = [];
    if (grant.complete) {
      this._succeed(row, grant.upload_id); // every byte was there: the re-grant joined the parts
      return;
    }
    const parts = grantParts(grant, file.size);
    const sent = parts.map(p => p.offset);
    const current = () => slot.run === run && row.state !== 'cancelled' && row.state !== 'failed';
    const stopOthers = () => {
      slot.run++;
      for (const u of slot.uploads) {
        void u.abort(false);
      }
    };
    const meter = this._meters.get(row.key)!;
    let lastSaved = 0;
    let left = parts.filter(p => p.offset < p.end - p.start).length;
    if (left === 0) {
      this._succeed(row, grant.upload_id);
      return;
    }
    parts.forEach((part, index) => {
      if (part.offset >= part.end - part.start) {
        return;
      }
      const source = parts.length === 1 ? file : file.slice(part.start, part.end);
      const upload = new tus.Upload(source as File, {
        uploadUrl: part.url,
        chunkSize: this._options.chunkSize ?? Infinity,
        retryDelays: this._options.retryDelays ?? [0, 1000, 3000, 5000, 10000, 20000, 30000],
        storeFingerprintForResuming: false,
        removeFingerprintOnSuccess: true,
        onProgress: (bytes: number) => {
          if (!current()) {
            return;
          }
          sent[index] = bytes;
          const total = sent.reduce((a, b) => a + b, 0);
          row.state = 'uploading';
          row.message = undefined;
          row.sent = total;
          meter.add(total, performance.now());
          row.speed = meter.speed;
          const now = Date.now();
          if (now - lastSaved > 1000) {
            lastSaved = now;
            this.store.progress(grant.upload_id, total);
          }
          this.onChange(row);
        },
        onShouldRetry: (err: tus.DetailedError, _attempt: number, options: tus.UploadOptions) => {
          const status = err.originalResponse ? err.originalResponse.getStatus() : 0;
          if (!current()) {
            return false;
          }
          if (status === 401 || status === 403 || (status >= 400 && status < 500 && status !== 409 && status !== 423)) {
            return false; // a refusal: retrying the same URL will not help
          }
          row.state = 'retrying';
          row.speed = 0;
          meter.reset();
          row.message = 'Connection lost: retrying from where the server stopped…';
          this.onChange(row);
          return true;
        },
        onError: (err: Error) => {
          if (!current()) {
            return;
          }
          stopOthers();
          const status = (err as tus.DetailedError).originalResponse?.getStatus() ?? 0;
          if ((status === 401 || status === 403) && regrants < 3) {
            // the grant expired (they are short-lived): fresh URLs for the same upload's parts
            this._api
              .regrant(row.folder, grant.upload_id)
              .then(g => this._run(row, file, g, regrants + 1))
              .catch(e => this._fail(row, errorSentence(e, `resume uploading ${row.path}`)));
            return;
          }
          this._fail(row, errorSentence(err, `upload ${row.path}`));
        },
        onSuccess: () => {
          // the part whose end completes the file answers once the service has joined it
          if (current() && --left === 0) {
            this._succeed(row, grant.upload_id);
          }
        }
      } as tus.UploadOptions);
      slot.uploads.push(upload);
      upload.start();
    });
  }

  private _succeed(row: UploadRow, uploadId: string): void {
    row.state = 'done';
    row.sent = row.size;
    row.speed = (row.size / Math.max(1, Date.now() - row.started)) * 1000; // the average, at the end
    row.finished = Date.now();
    row.message = undefined;
    this.store.remove(uploadId);
    this.onChange(row);
    this.onDone(row);
  }
}

/** Start a download of a file (Range-capable URL) or a folder (an archive) by the service's short URL. */
export async function download(api: SidebarAPI, folder: string, path: string, directory: boolean): Promise<string> {
  const { url } = await api.download(folder, path, directory);
  const a = document.createElement('a');
  a.href = url;
  a.download = '';
  a.rel = 'noopener';
  document.body.appendChild(a);
  a.click();
  a.remove();
  return url;
}

/** The files of a drop, folders walked (their relative paths kept), or of an <input type=file>. */
export async function droppedFiles(data: DataTransfer): Promise<PickedFile[]> {
  const entries: FileSystemEntry[] = [];
  for (const item of Array.from(data.items ?? [])) {
    const entry = item.kind === 'file' ? item.webkitGetAsEntry?.() : null;
    if (entry) {
      entries.push(entry);
    }
  }
  if (entries.length === 0) {
    return Array.from(data.files ?? []).map(file => ({ file, path: file.name }));
  }
  const out: PickedFile[] = [];
  const walk = async (entry: FileSystemEntry, prefix: string): Promise<void> => {
    if (entry.isFile) {
      const file = await new Promise<File>((ok, bad) => (entry as FileSystemFileEntry).file(ok, bad));
      out.push({ file, path: prefix + entry.name });
    } else if (entry.isDirectory) {
      const reader = (entry as FileSystemDirectoryEntry).createReader();
      for (;;) {
        const batch = await new Promise<FileSystemEntry[]>((ok, bad) => reader.readEntries(ok, bad));
        if (batch.length === 0) {
          break;
        }
        for (const child of batch) {
          await walk(child, `${prefix}${entry.name}/`);
        }
      }
    }
  };
  for (const e of entries) {
    await walk(e, '');
  }
  return out;
}

export function pickedFiles(input: HTMLInputElement): PickedFile[] {
  return Array.from(input.files ?? []).map(file => ({
    file,
    path: (file as File & { webkitRelativePath?: string }).webkitRelativePath || file.name
  }));
}
