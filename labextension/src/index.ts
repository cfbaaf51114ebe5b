/**
 * backendai-hub's JupyterLab extension. Two plugins:
 * - the culler's warning: when the hub's service plans to stop this session (idle timeout, max
 *   lifetime), it tells the session's server part (route backendai-hub/cull); this plugin polls that
 *   state and shows a JupyterLab notification saying when and why, dismissed when the stop is off;
 * - the "Virtual folders" sidebar (sidebar.ts), talking to the server part's backendai-hub/api/.
 */
import { ILabShell, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Notification } from '@jupyterlab/apputils';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { LabIcon } from '@jupyterlab/ui-components';

import { SidebarAPI } from './api';
import { PlannedStop, apiTransport, requestAPI } from './request';
import { ResumeStore } from './resume';
import { FolderSidebar } from './sidebar';
import { Uploads } from './transfers';

const PLUGIN_ID = 'backendai-hub-labextension:plugin';

/**
 * The notification's text for a planned stop: local time, time left, the reason. Short enough for a
 * JupyterLab toast, which cuts messages past 140 characters.
 */
export function warningText(stop: PlannedStop, now: Date = new Date()): string {
  const at = new Date(stop.stop_at as string);
  const seconds = Math.max(0, Math.round((at.getTime() - now.getTime()) / 1000));
  const left = seconds < 60 ? 'in under a minute' : `in ${Math.round(seconds / 60)} min`;
  const when = at.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  const hint = (stop.reason ?? '').startsWith('idle') ? 'Save your work, or keep working.' : 'Save your work.';
  return `This session stops at ${when} (${left}): ${stop.reason}. ${hint}`;
}

class CullWarning {
  private _shown: string | null = null; // the stop_at and reason on screen
  private _id: string | null = null; // the notification's id
  private _timer: number | null = null;

  constructor(private _interval: number) {}

  set interval(seconds: number) {
    this._interval = seconds;
    this.schedule(0);
  }

  schedule(delay: number): void {
    if (this._timer !== null) {
      window.clearTimeout(this._timer);
    }
    this._timer = window.setTimeout(() => void this.check(), delay);
  }

  async check(): Promise<void> {
    try {
      this.show(await requestAPI<PlannedStop>('cull'));
    } catch (reason) {
      console.debug('backendai-hub: planned stop unavailable', reason);
    }
    this.schedule(this._interval * 1000);
  }

  show(stop: PlannedStop): void {
    const key = stop.stop_at ? `${stop.stop_at} ${stop.reason}` : null;
    if (key === this._shown) {
      return;
    }
    if (this._id !== null) {
      Notification.dismiss(this._id);
      this._id = null;
    }
    this._shown = key;
    if (key !== null) {
      this._id = Notification.warning(warningText(stop), { autoClose: false });
    }
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: "Shows the backendai-hub culler's warning before it stops this session.",
  autoStart: true,
  optional: [ISettingRegistry],
  activate: (app: JupyterFrontEnd, settingRegistry: ISettingRegistry | null) => {
    const warning = new CullWarning(5);
    warning.schedule(0);
    if (settingRegistry) {
      settingRegistry
        .load(plugin.id)
        .then(settings => {
          const apply = () => {
            warning.interval = settings.get('pollInterval').composite as number;
          };
          apply();
          settings.changed.connect(apply);
        })
        .catch(reason => console.error('backendai-hub: settings failed to load', reason));
    }
  }
};

const folderIcon = new LabIcon({
  name: 'backendai-hub:vfolders',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24"><path class="jp-icon3" fill="#616161" ' +
    'd="M10 4H4c-1.1 0-2 .9-2 2v12c0 1.1.9 2 2 2h16c1.1 0 2-.9 2-2V8c0-1.1-.9-2-2-2h-8l-2-2zm2 5l4 4h-3v4h-2v-4H8l4-4z"/></svg>'
});

const sidebarPlugin: JupyterFrontEndPlugin<void> = {
  id: 'backendai-hub-labextension:vfolders',
  description: 'The Virtual folders sidebar: see, share, upload to and mount your backendai-hub folders.',
  autoStart: true,
  requires: [ILabShell],
  optional: [ISettingRegistry],
  activate: (app: JupyterFrontEnd, shell: ILabShell, settingRegistry: ISettingRegistry | null) => {
    const api = new SidebarAPI(apiTransport());
    // one store per server: two sessions of one user share the origin
    const store = new ResumeStore(window.localStorage, `backendai-hub:uploads:${location.pathname.split('/lab')[0]}`);
    const uploads = new Uploads(api, store);
    const sidebar = new FolderSidebar(api, uploads, {
      openPath: async path => {
        await app.commands.execute('filebrowser:go-to-path', { path: `/${path}` });
        shell.activateById('filebrowser');
      },
      restarting: nextUrl => {
        // the server goes away and comes back: the hub's spawn-pending page waits for it
        window.setTimeout(() => (nextUrl ? window.location.assign(nextUrl) : window.location.reload()), 1500);
      },
      badge: count => {
        // keep the shell's data-id (tests and the shell find the tab by it)
        // (Lumino sets each key as the attribute data-<key>: a kebab-case key)
        const { 'bhub-invitations': _old, ...rest } = sidebar.title.dataset;
        sidebar.title.dataset = count > 0 ? { ...rest, 'bhub-invitations': String(count) } : rest;
        sidebar.title.className = count > 0 ? 'bhub-mod-invited' : '';
        sidebar.title.caption = count > 0 ? `Virtual folders: ${count} invitation(s)` : 'Virtual folders';
      }
    });
    sidebar.title.icon = folderIcon;
    shell.add(sidebar, 'left', { rank: 150 });
    void sidebar.refresh();
    let interval = 30;
    let timer = 0;
    const schedule = () => {
      window.clearInterval(timer);
      timer = window.setInterval(() => {
        if (sidebar.isVisible) {
          void sidebar.refresh(false);
        }
      }, interval * 1000);
    };
    schedule();
    if (settingRegistry) {
      settingRegistry
        .load(plugin.id)
        .then(settings => {
          const apply = () => {
            interval = (settings.get('folderRefresh').composite as number) || 30;
            uploads.parallel = (settings.get('uploadParts').composite as number) || 4;
            schedule();
          };
          apply();
          settings.changed.connect(apply);
        })
        .catch(reason => console.error('backendai-hub: settings failed to load', reason));
    }
  }
};

export default [plugin, sidebarPlugin];
