/**
 * backendai-hub's JupyterLab extension. One plugin for now: the culler's warning. When the hub's
 * service plans to stop this session (idle timeout, max lifetime), it tells the session's server part
 * (backendai_hub_labextension, route backendai-hub/cull); this plugin polls that state and shows a
 * JupyterLab notification saying when and why, and dismisses it when the stop is called off.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Notification } from '@jupyterlab/apputils';
import { ISettingRegistry } from '@jupyterlab/settingregistry';

import { PlannedStop, requestAPI } from './request';

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

export default plugin;
