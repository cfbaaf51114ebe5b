/**
 * The sidebar's calls to the session's server extension (<base_url>backendai-hub/api/...), which
 * forwards them to the hub's service with this session's own token. Every route is named here once.
 * The transport is injected (index.ts passes JupyterLab's ServerConnection: cookie auth and XSRF).
 */
import { APIError } from './errors';
import { Folder, FoldersAnswer, Permission } from './model';

/** fetch-like: path relative to backendai-hub/api/ */
export type Transport = (path: string, init: RequestInit) => Promise<Response>;

/** One byte range of a file sent as several requests side by side (a tus partial upload). */
export interface UploadPart {
  upload_id: string;
  url: string;
  start: number;
  end: number;
  offset: number;
}

export interface UploadGrant {
  upload_id: string;
  url: string;
  expires_at?: string;
  path?: string;
  length?: number;
  offset?: number;
  /** every byte is in place (a re-grant that joined the parts) */
  complete?: boolean;
  /** the parts to send side by side, when the service split the file */
  parts?: UploadPart[];
}

export interface CloneTask {
  id: string;
  status?: string; // running | done | failed
  message?: string | null;
  copied_bytes?: number;
  total_bytes?: number;
  vfolder_id?: string;
}

export interface Collaborator {
  user?: string;
  username?: string;
  email?: string;
  permission: Permission;
}

export interface FileEntry {
  name: string;
  type: string; // file | directory | symlink | ...
  size: number;
  modified?: string;
}

export interface CreateRequest {
  name: string;
  host?: string;
  usage_mode?: string;
  quota?: number | null;
  cloneable?: boolean;
}

const enc = encodeURIComponent;

export class SidebarAPI {
  constructor(private _transport: Transport) {}

  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const init: RequestInit = { method };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers = { 'Content-Type': 'application/json' };
    }
    const response = await this._transport(path, init);
    const text = await response.text();
    let data: any = null;
    if (text.length > 0) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
    if (!response.ok) {
      const message = (data && typeof data.message === 'string' && data.message) || '';
      throw new APIError(response.status, message, data?.field, data?.rule);
    }
    return data as T;
  }

  folders(): Promise<FoldersAnswer> {
    return this.call('GET', 'folders');
  }
  create(req: CreateRequest): Promise<Folder> {
    return this.call('POST', 'folders', req);
  }
  rename(id: string, newName: string): Promise<Folder> {
    return this.call('PATCH', `folders/${enc(id)}`, { name: newName });
  }
  delete(id: string): Promise<void> {
    return this.call('DELETE', `folders/${enc(id)}`);
  }
  trash(): Promise<{ items: Folder[]; total?: number }> {
    return this.call('GET', 'trash');
  }
  restore(id: string): Promise<Folder> {
    return this.call('POST', `folders/${enc(id)}/restore`);
  }
  purge(id: string): Promise<void> {
    return this.call('POST', `folders/${enc(id)}/purge`);
  }
  files(id: string, path = ''): Promise<{ items: FileEntry[] }> {
    return this.call('GET', `folders/${enc(id)}/files?path=${enc(path)}`);
  }
  invite(id: string, emails: string[], permission: Permission): Promise<unknown> {
    return this.call('POST', `folders/${enc(id)}/invitations`, { emails, permission });
  }
  answer(invitation: string, accept: boolean): Promise<unknown> {
    return this.call('POST', `invitations/${enc(invitation)}/${accept ? 'accept' : 'decline'}`);
  }
  /** per-user overrides of a group folder: these users get this permission */
  share(id: string, users: string[], permission: Permission): Promise<unknown> {
    return this.call('POST', `folders/${enc(id)}/share`, { users, permission });
  }
  unshare(id: string, users: string[]): Promise<unknown> {
    return this.call('POST', `folders/${enc(id)}/unshare`, { users });
  }
  leave(id: string): Promise<unknown> {
    return this.call('POST', `folders/${enc(id)}/leave`);
  }
  collaborators(id: string): Promise<{ items: Collaborator[] }> {
    return this.call('GET', `folders/${enc(id)}/collaborators`);
  }
  kick(id: string, user: string): Promise<unknown> {
    return this.call('DELETE', `folders/${enc(id)}/collaborators/${enc(user)}`);
  }
  clone(id: string, target: string, extra: Partial<CreateRequest> = {}): Promise<Folder & { task: CloneTask }> {
    return this.call('POST', `folders/${enc(id)}/clone`, { name: target, ...extra });
  }
  task(id: string): Promise<CloneTask> {
    return this.call('GET', `tasks/${enc(id)}`);
  }
  grant(folder: string, path: string, size: number, parts = 1): Promise<UploadGrant> {
    return this.call('POST', `folders/${enc(folder)}/uploads`, parts > 1 ? { path, size, parts } : { path, size });
  }
  regrant(folder: string, uploadId: string): Promise<UploadGrant> {
    return this.call('POST', `folders/${enc(folder)}/uploads`, { upload_id: uploadId });
  }
  cancelUpload(folder: string, uploadId: string): Promise<void> {
    return this.call('DELETE', `folders/${enc(folder)}/uploads/${enc(uploadId)}`);
  }
  download(folder: string, path: string, archive = false): Promise<{ url: string; name?: string; directory?: boolean }> {
    return this.call('GET', `folders/${enc(folder)}/download?path=${enc(path)}${archive ? '&archive=zip' : ''}`);
  }
  restart(vfolders: string[]): Promise<{ status?: string; next_url?: string }> {
    return this.call('POST', 'session/restart', { vfolders });
  }
}
