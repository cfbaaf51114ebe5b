/**
 * The uploads to resume after a page reload, kept in localStorage: the upload's id at the service,
 * its folder and path, the file's size and fingerprint (name, size, last modified). The browser cannot
 * keep the File itself, so after a reload the user picks the file again; a file whose fingerprint
 * differs is refused (it would corrupt the upload), and the server re-grants a URL for the upload.
 */

export interface PendingUpload {
  upload_id: string;
  /** the folder's id (what the API takes) and its name when the upload started (what the row says) */
  folder: string;
  folder_name?: string;
  path: string;
  size: number;
  fingerprint: string;
  /** bytes the server had when this was last saved (the server's HEAD is what counts) */
  offset: number;
  updated_at: number;
}

/** The part of a File the fingerprint reads (a File is one). */
export interface FileLike {
  name: string;
  size: number;
  lastModified?: number;
}

export function fingerprint(file: FileLike): string {
  return `${file.name}\u0000${file.size}\u0000${file.lastModified ?? 0}`;
}

const KEY = 'backendai-hub:uploads';
/** entries older than this are forgotten (the service drops unfinished uploads after a while too) */
const MAX_AGE_MS = 7 * 24 * 3600 * 1000;

export class ResumeStore {
  /** key: namespaced by the server (a user's sessions share an origin) */
  constructor(
    private _storage: Pick<Storage, 'getItem' | 'setItem' | 'removeItem'>,
    private _key = KEY,
    private _now: () => number = Date.now
  ) {}

  list(): PendingUpload[] {
    let raw: unknown;
    try {
      raw = JSON.parse(this._storage.getItem(this._key) || '[]');
    } catch {
      return []; // a broken entry is no upload
    }
    if (!Array.isArray(raw)) {
      return [];
    }
    const now = this._now();
    return raw.filter(
      (p): p is PendingUpload =>
        !!p &&
        typeof p.upload_id === 'string' &&
        typeof p.folder === 'string' &&
        typeof p.path === 'string' &&
        typeof p.size === 'number' &&
        typeof p.fingerprint === 'string' &&
        now - (p.updated_at ?? 0) < MAX_AGE_MS
    );
  }

  save(entry: Omit<PendingUpload, 'updated_at'>): void {
    const rest = this.list().filter(p => p.upload_id !== entry.upload_id);
    rest.push({ ...entry, updated_at: this._now() });
    this._write(rest);
  }

  /** Note the offset reached (cheap enough for every progress event: one small JSON). */
  progress(uploadId: string, offset: number): void {
    const all = this.list();
    const p = all.find(x => x.upload_id === uploadId);
    if (p) {
      p.offset = offset;
      p.updated_at = this._now();
      this._write(all);
    }
  }

  remove(uploadId: string): void {
    this._write(this.list().filter(p => p.upload_id !== uploadId));
  }

  /** The pending upload a re-picked file continues, if its fingerprint matches. */
  match(entry: PendingUpload, file: FileLike): boolean {
    return entry.size === file.size && entry.fingerprint === fingerprint(file);
  }

  /** The pending upload of this folder and path, if any. */
  find(folder: string, path: string): PendingUpload | undefined {
    return this.list().find(p => p.folder === folder && p.path === path);
  }

  private _write(all: PendingUpload[]): void {
    if (all.length === 0) {
      this._storage.removeItem(this._key);
    } else {
      this._storage.setItem(this._key, JSON.stringify(all));
    }
  }
}
