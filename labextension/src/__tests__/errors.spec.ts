import { APIError, errorSentence } from '../errors';

describe('errorSentence', () => {
  it("says the service's message as a sentence, with what failed", () => {
    const e = new APIError(413, "the quota of 'data' (1 GiB) is full", 'quota');
    expect(errorSentence(e)).toBe("The quota of 'data' (1 GiB) is full.");
    expect(errorSentence(e, "upload 'x.bin'")).toBe("Could not upload 'x.bin': the quota of 'data' (1 GiB) is full.");
    expect(errorSentence(new APIError(409, "Vfolder 'data' already exists"), "create 'data'")).toBe(
      "Could not create 'data': vfolder 'data' already exists."
    );
  });

  it('falls back to a sentence of the status when the server gave no message', () => {
    expect(errorSentence(new APIError(403, ''))).toBe('You are not allowed to do that.');
    expect(errorSentence(new APIError(418, ''))).toBe('The server answered 418.');
  });

  it('reads the message of a tus error answer and names a lost connection', () => {
    const answered = {
      originalRequest: {},
      originalResponse: { getStatus: () => 413, getBody: () => JSON.stringify({ message: "the folder's quota is reached" }) }
    };
    expect(errorSentence(answered, 'upload a.bin')).toBe("Could not upload a.bin: the folder's quota is reached.");
    const plain = { originalRequest: {}, originalResponse: { getStatus: () => 507, getBody: () => '<html>' } };
    expect(errorSentence(plain)).toBe('The storage host is full.');
    expect(errorSentence({ originalRequest: {}, originalResponse: null })).toBe(
      'The connection was lost; it is retried when the network is back.'
    );
  });

  it('names a network failure and plain errors', () => {
    expect(errorSentence(new TypeError('Failed to fetch'), 'load the folders')).toBe(
      "Could not load the folders: the session's server could not be reached (network down, or the session stopped)."
    );
    expect(errorSentence(new Error('Quota: bad'))).toBe('Quota: bad.');
    expect(errorSentence('quota full')).toBe('Quota full.');
  });
});
