/**
 * Errors as sentences a person reads: the service's message (quota full, name taken, permission),
 * or what went wrong on the way when there is none.
 */
import { sentence } from './model';

/** An error answer of the server extension: {message, field?, rule?} with the service's status. */
export class APIError extends Error {
  constructor(
    public status: number,
    message: string,
    public field?: string,
    public rule?: string
  ) {
    super(message);
    this.name = 'APIError';
  }
}

/** tus-js-client's DetailedError carries the response it failed on. */
interface TusLike {
  originalResponse?: { getStatus(): number; getBody(): string } | null;
  originalRequest?: unknown;
  causingError?: Error;
}

const STATUS_SENTENCES: Record<number, string> = {
  400: 'The server refused the request as malformed',
  401: 'Your sign-in has expired: reload the page to sign in again',
  403: 'You are not allowed to do that',
  404: 'It is gone: someone may have deleted or renamed it',
  409: 'That conflicts with what is there now (a name taken, or a change made meanwhile)',
  410: 'That upload expired on the server',
  413: "That does not fit in the folder's quota",
  423: 'It is in use (locked) right now; try again in a moment',
  429: 'Too many requests; try again in a moment',
  502: "The hub's service could not be reached",
  503: 'The service is busy; try again in a moment',
  507: 'The storage host is full'
};

function fromBody(body: string): string | null {
  try {
    const data = JSON.parse(body);
    if (data && typeof data.message === 'string' && data.message.trim()) {
      return data.message;
    }
  } catch {
    // not JSON
  }
  return null;
}

/** The sentence to show for any error the sidebar meets. */
export function errorSentence(error: unknown, doing?: string): string {
  const prefix = doing ? `Could not ${doing}: ` : '';
  const join = (text: string) => sentence(prefix ? prefix + lowerFirst(text) : text);
  if (error instanceof APIError) {
    return join(error.message || STATUS_SENTENCES[error.status] || `the server answered ${error.status}`);
  }
  const tus = error as TusLike;
  if (tus && typeof tus === 'object' && 'originalRequest' in tus) {
    const res = tus.originalResponse;
    if (res) {
      const status = res.getStatus();
      return join(fromBody(res.getBody() || '') || STATUS_SENTENCES[status] || `the server answered ${status}`);
    }
    return join('the connection was lost; it is retried when the network is back');
  }
  if (error instanceof TypeError) {
    // fetch's network failure
    return join("the session's server could not be reached (network down, or the session stopped)");
  }
  if (error instanceof Error && error.message) {
    return join(error.message);
  }
  return join(String(error || 'something went wrong'));
}

function lowerFirst(text: string): string {
  // keep names and acronyms ("API", "'x'") as they are
  if (/^[A-Z][a-z]/.test(text)) {
    return text[0].toLowerCase() + text.slice(1);
  }
  return text;
}
