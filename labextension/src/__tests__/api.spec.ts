/** SidebarAPI with a stand-in transport (the server extension runs in a session: the browser tests). */
import { SidebarAPI } from '../api';
import { APIError } from '../errors';

function respond(status: number, body: string) {
  return { ok: status >= 200 && status < 300, status, text: async () => body } as unknown as Response;
}

describe('SidebarAPI (stand-in transport)', () => {
  it('sends JSON to the named routes and reads JSON back', async () => {
    const calls: Array<[string, RequestInit]> = [];
    const api = new SidebarAPI(async (path, init) => {
      calls.push([path, init]);
      return respond(200, JSON.stringify({ upload_id: 'u', url: '/x' }));
    });
    expect(await api.grant('my data', 'a/b.bin', 10)).toEqual({ upload_id: 'u', url: '/x' });
    await api.grant('my data', 'c.bin', 1 << 30, 4);
    await api.regrant('my data', 'u');
    await api.download('d', 'dir/', true);
    expect(calls.map(([p, i]) => [p, i.method, i.body])).toEqual([
      ['folders/my%20data/uploads', 'POST', JSON.stringify({ path: 'a/b.bin', size: 10 })],
      ['folders/my%20data/uploads', 'POST', JSON.stringify({ path: 'c.bin', size: 1 << 30, parts: 4 })],
      ['folders/my%20data/uploads', 'POST', JSON.stringify({ upload_id: 'u' })],
      ['folders/d/download?path=dir%2F&archive=zip', 'GET', undefined]
    ]);
  });

  it("turns an error answer into an APIError with the service's message, field and rule", async () => {
    const api = new SidebarAPI(async () => respond(409, JSON.stringify({ message: "name 'x' is taken", field: 'name' })));
    await expect(api.create({ name: 'x' })).rejects.toMatchObject({ status: 409, message: "name 'x' is taken", field: 'name' });
    const bare = new SidebarAPI(async () => respond(502, '<html>bad gateway</html>'));
    const e = await bare.folders().catch(x => x);
    expect(e).toBeInstanceOf(APIError);
    expect([e.status, e.message]).toEqual([502, '']);
  });
});
