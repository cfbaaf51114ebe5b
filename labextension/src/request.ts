import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** The stop the hub's service plans for this session (stop_at null: none). */
export interface PlannedStop {
  stop_at: string | null;
  reason: string | null;
  updated_at: string | null;
}

/**
 * Call the server part's API (under <base_url>backendai-hub/). Reads carry no_track_activity so
 * that checking for a planned stop never counts as activity of the session.
 */
export async function requestAPI<T>(endPoint = '', init: RequestInit = {}): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'backendai-hub', endPoint) + '?no_track_activity=1';
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ServerConnection.NetworkError(error as TypeError);
  }
  const text = await response.text();
  const data = text.length > 0 ? JSON.parse(text) : null;
  if (!response.ok) {
    throw new ServerConnection.ResponseError(response, data?.message || text);
  }
  return data as T;
}

/**
 * The sidebar's transport: <base_url>backendai-hub/api/<path> through ServerConnection (the page's
 * auth and XSRF header on writes). No activity tracking: the panel's refresh is not the user working.
 */
export function apiTransport(): (path: string, init: RequestInit) => Promise<Response> {
  const settings = ServerConnection.makeSettings();
  return async (path, init) => {
    const [route, query] = path.split('?');
    const url = URLExt.join(settings.baseUrl, 'backendai-hub', 'api', route) + (query ? `?${query}` : '');
    try {
      return await ServerConnection.makeRequest(url, init, settings);
    } catch (error) {
      throw new ServerConnection.NetworkError(error as TypeError);
    }
  };
}
