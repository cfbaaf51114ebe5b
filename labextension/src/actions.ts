/**
 * What each folder button does: the dialogs that ask for what an action needs, then one call through
 * the server extension (the service decides and names what it refuses).
 */
import { SidebarAPI } from './api';
import { confirm, formDialog } from './dialogs';
import { errorSentence } from './errors';
import { Folder, FoldersAnswer, Permission, browsePath } from './model';
import { download } from './transfers';

/** What an action may do to the panel it was clicked in. */
export interface ActionContext {
  readonly api: SidebarAPI;
  readonly answer: FoldersAnswer | null;
  readonly host: {
    openPath(path: string): Promise<void>;
    restarting(nextUrl: string | undefined): void;
  };
  /** run a call; on success refresh (and say `done`), on failure show the service's sentence */
  act(doing: string, call: () => Promise<unknown>, done?: string): Promise<boolean>;
  /** show an error sentence */
  fail(message: string): void;
  /** show a notice (and clear the error) */
  notice(message: string): void;
  /** the folder now called `name` is the open one */
  opened(name: string): void;
  pick(folder: { id: string; name: string }, kind: 'files' | 'folder'): void;
  clone(f: Folder, target: string, cloneable: boolean): Promise<void>;
}

export const PERMS = [
  { value: 'ro', label: 'read-only' },
  { value: 'rw', label: 'read-write' },
  { value: 'wd', label: 'read-write-delete' }
];

/** The action `id` (a button's data-do) on folder `f`. */
export async function folderAction(ctx: ActionContext, f: Folder, id: string): Promise<void> {
  const n = f.name;
  const fid = f.id;
  switch (id) {
    case 'open': {
      const path = browsePath(f);
      if (path !== null) {
        await ctx.host.openPath(path);
      }
      return;
    }
    case 'restart': {
      const mounted = (ctx.answer?.folders ?? []).filter(x => x.mount?.mounted).map(x => x.name);
      const ok = await confirm('Restart with the folder mounted',
        `Restart this session with '${n}' mounted at /home/work/${n}? The session's server restarts: every kernel and terminal stops, and what is not saved in them is lost.`,
        'Restart');
      if (ok) {
        try {
          const answer = await ctx.api.restart([...mounted, n]);
          ctx.notice('Restarting the session: this page comes back when it is up.');
          ctx.host.restarting(answer?.next_url);
        } catch (e) {
          ctx.fail(errorSentence(e, `restart this session with '${n}' mounted`));
        }
      }
      return;
    }
    case 'upload-files':
    case 'upload-folder':
      ctx.pick(f, id === 'upload-folder' ? 'folder' : 'files');
      return;
    case 'download': {
      const v = await formDialog(`Download from '${n}'`, [
        { name: 'path', label: 'Path in the folder', placeholder: 'a file, or a folder (empty: the whole folder)', help: 'Folders come as an archive.' }
      ], 'Download');
      if (v) {
        const path = String(v.path).trim().replace(/^\/+/, '');
        await ctx.act(`download '${path || n}'`, () => download(ctx.api, fid, path, path === '' || path.endsWith('/')));
      }
      return;
    }
    case 'rename': {
      const v = await formDialog(`Rename '${n}'`, [{ name: 'name', label: 'New name', value: n }], 'Rename');
      if (v && String(v.name).trim() !== n) {
        const to = String(v.name).trim();
        if (await ctx.act(`rename '${n}'`, () => ctx.api.rename(fid, to), `Renamed '${n}' to '${to}'.`)) {
          ctx.opened(to);
        }
      }
      return;
    }
    case 'delete':
      if (await confirm('Move to trash', `Move '${n}' to the trash? You can restore it from the trash view.`, 'Move to trash')) {
        await ctx.act(`move '${n}' to the trash`, () => ctx.api.delete(fid), `Moved '${n}' to the trash.`);
      }
      return;
    case 'invite': {
      const v = await formDialog(`Invite people to '${n}'`, [
        { name: 'emails', label: 'Email addresses', placeholder: 'one or more, separated by commas' },
        { name: 'permission', label: 'Permission', type: 'select', options: PERMS, value: 'ro' }
      ], 'Invite');
      if (v) {
        const emails = String(v.emails).split(/[\s,;]+/).filter(Boolean);
        await ctx.act(`invite to '${n}'`, () => ctx.api.invite(fid, emails, v.permission as Permission),
          `Invited ${emails.join(', ')} to '${n}'.`);
      }
      return;
    }
    case 'share': {
      const v = await formDialog(`Share '${n}' with members of ${f.group_name || 'its group'}`, [
        { name: 'users', label: 'Users (names or emails)', type: 'textarea', placeholder: 'one or more, separated by commas' },
        { name: 'permission', label: 'Their permission (overrides the group’s)', type: 'select', options: PERMS, value: 'ro' }
      ], 'Share');
      if (v) {
        const users = String(v.users).split(/[\s,;]+/).filter(Boolean);
        await ctx.act(`share '${n}'`, () => ctx.api.share(fid, users, v.permission as Permission),
          `Shared '${n}' with ${users.join(', ')}.`);
      }
      return;
    }
    case 'unshare': {
      const v = await formDialog(`Unshare '${n}'`, [
        { name: 'users', label: 'Users whose override goes (names or emails)', type: 'textarea' }
      ], 'Unshare');
      if (v) {
        const users = String(v.users).split(/[\s,;]+/).filter(Boolean);
        await ctx.act(`unshare '${n}'`, () => ctx.api.unshare(fid, users), `Unshared '${n}' from ${users.join(', ')}.`);
      }
      return;
    }
    case 'kick': {
      let members: Array<{ value: string; label: string }> = [];
      try {
        members = (await ctx.api.collaborators(fid)).items.map(m => {
          const user = m.username || m.user || m.email || '';
          return { value: user, label: `${m.email || user} (${m.permission})` };
        });
      } catch (e) {
        ctx.fail(errorSentence(e, `list the people of '${n}'`));
        return;
      }
      const v = await formDialog(`Remove a person from '${n}'`, members.length
        ? [{ name: 'user', label: 'Person', type: 'select', options: members }]
        : [{ name: 'user', label: 'User name or email', help: 'Nobody else has access to this folder yet.' }], 'Remove');
      if (v && String(v.user).trim()) {
        const who = String(v.user).trim();
        await ctx.act(`remove ${who} from '${n}'`, () => ctx.api.kick(fid, who), `Removed ${who} from '${n}'.`);
      }
      return;
    }
    case 'leave':
      if (await confirm('Leave the folder', `Leave '${n}'? You lose access to it until someone invites you again.`, 'Leave')) {
        await ctx.act(`leave '${n}'`, () => ctx.api.leave(fid), `You left '${n}'.`);
      }
      return;
    case 'clone': {
      const v = await formDialog(`Clone '${n}'`, [
        { name: 'name', label: 'Name of the copy', value: `${n}-copy` },
        { name: 'cloneable', label: 'The copy is cloneable', type: 'checkbox', value: false }
      ], 'Clone');
      if (v) {
        await ctx.clone(f, String(v.name).trim(), !!v.cloneable);
      }
      return;
    }
  }
}
