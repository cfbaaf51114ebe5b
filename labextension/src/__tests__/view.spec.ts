import { Folder, groupFolders } from '../model';
import { ViewHandlers, folderList, invitationList, transferList, uploadRow } from '../view';

const none: ViewHandlers = { select: () => undefined, button: () => undefined, drop: () => undefined };

const shared: Folder = {
  id: '1',
  name: 'results',
  group: 'shared',
  owner: 'alice',
  permission: 'ro',
  host: 'local',
  usage_mode: 'general',
  quota_bytes: 1024 ** 3,
  used_bytes: 20 * 1024 ** 2,
  mount: { mounted: false },
  actions: {
    download: { allowed: true },
    upload: { allowed: false, reason: "you hold 'ro' on 'results'; uploading needs 'rw'" },
    rename: { allowed: false, reason: "only the owner may rename 'results'" },
    delete: { allowed: false, reason: "only the owner may delete 'results'" },
    leave: { allowed: true },
    mount: { allowed: true }
  }
};

function render(folders: Folder[], open: string | null, handlers = none) {
  const root = document.createElement('div');
  root.append(folderList(groupFolders(folders), open, handlers));
  document.body.replaceChildren(root);
  return root;
}

describe('the folder list', () => {
  it('shows each group with its count, and a row with permission, usage and mount state', () => {
    const root = render([shared], null);
    const titles = Array.from(root.querySelectorAll('.bhub-Group-title')).map(e => e.textContent);
    expect(titles).toEqual(['My folders (0)', "My groups' folders (0)", 'Shared with me (1)', 'Public (0)']);
    const row = root.querySelector('[data-group="shared"] .bhub-Folder[data-name="results"]')!;
    expect(row.querySelector('.bhub-Perm')!.textContent).toBe('ro');
    expect(row.querySelector('.bhub-Usage')!.getAttribute('title')).toBe('20 MiB of 1 GiB (2 %)');
    expect((row.querySelector('.bhub-Usage-fill') as HTMLElement).style.width).toBe('2.0%');
    expect(row.querySelector('.bhub-MountMark')!.getAttribute('title')).toBe('Not mounted in this session');
    expect(row.querySelector('.bhub-Folder-meta')!.textContent).toBe('local · general · alice');
    expect(row.querySelector('.bhub-Detail')).toBeNull(); // details only for the open folder
  });

  it('greys out what the user may not do, with the reason on the button and in the text', () => {
    const clicked: string[] = [];
    const root = render([shared], 'results', { ...none, button: (_f: Folder, id: string) => void clicked.push(id) });
    const button = (id: string) => root.querySelector(`button[data-action="${id}"]`) as HTMLButtonElement;
    expect(button('upload-files').disabled).toBe(true);
    expect(button('upload-files').title).toBe("You hold 'ro' on 'results'; uploading needs 'rw'.");
    expect(button('rename').disabled).toBe(true);
    expect(button('download').disabled).toBe(false);
    expect(button('leave').disabled).toBe(false);
    expect(button('invite').disabled).toBe(true); // not described by the server: denied
    expect(button('open')).toBeNull(); // not mounted: restart instead
    expect(button('restart').disabled).toBe(false);
    const reasons = Array.from(root.querySelectorAll('.bhub-Reasons li')).map(e => e.textContent);
    expect(reasons).toContain("Upload files: You hold 'ro' on 'results'; uploading needs 'rw'.");
    expect(reasons).toContain("Rename: Only the owner may rename 'results'.");
    expect(reasons).toContain("Invite: The server did not say that you may invite people to 'results'.");
    button('rename').click();
    button('download').click();
    expect(clicked).toEqual(['download']);
    expect(root.querySelector('.bhub-DropHint')).toBeNull(); // no upload: no drop zone
  });

  it('offers the file browser for a mounted folder', () => {
    const mine: Folder = { ...shared, group: 'mine', name: 'data', mount: { mounted: true, path: '/home/work/data', mode: 'rw' } };
    const root = render([mine], 'data');
    expect(root.querySelector('.bhub-Facts-mount')!.textContent).toBe('Mounted at /home/work/data (read-write)');
    expect(root.querySelector('button[data-action="open"]')).not.toBeNull();
    expect(root.querySelector('button[data-action="restart"]')).toBeNull();
    expect(root.querySelector('.bhub-MountMark')!.textContent).toBe('mounted rw');
  });

  it('opens and closes a folder by its row', () => {
    const selected: Array<string | null> = [];
    const root = render([shared], null, { ...none, select: (n: string | null) => void selected.push(n) });
    (root.querySelector('.bhub-Folder-head') as HTMLElement).click();
    const open = render([shared], 'results', { ...none, select: (n: string | null) => void selected.push(n) });
    (open.querySelector('.bhub-Folder-head') as HTMLElement).click();
    expect(selected).toEqual(['results', null]);
  });

  it('builds a thousand rows with a few nodes each', () => {
    const many = Array.from({ length: 1000 }, (_, i) => ({ ...shared, id: String(i), name: `f${String(i).padStart(4, '0')}` }));
    const root = render(many, null);
    expect(root.querySelectorAll('.bhub-Folder').length).toBe(1000);
    expect(root.querySelectorAll('*').length).toBeLessThan(1000 * 8 + 20);
  });
});

describe('invitations and transfers', () => {
  it('lists invitations with accept and decline', () => {
    const answers: Array<[string, boolean]> = [];
    const el = invitationList([{ id: 'i1', vfolder_name: 'results', inviter_email: 'alice@example.org', permission: 'ro' }], (inv, ok) =>
      answers.push([inv.id, ok])
    );
    expect(el.querySelector('.bhub-Invitation-text')!.textContent).toBe("alice@example.org invites you to 'results' (read-only)");
    (el.querySelector('[data-answer="accept"]') as HTMLElement).click();
    (el.querySelector('[data-answer="decline"]') as HTMLElement).click();
    expect(answers).toEqual([['i1', true], ['i1', false]]);
    expect(invitationList([], () => undefined).textContent).toBe('No invitations.');
  });

  it('shows an upload with its progress, speed and a cancel button, and a pending one to resume', () => {
    const MiB = 1024 * 1024;
    const row = uploadRow(
      { key: 'u1', folder: 'id1', folderName: 'data', path: 'big.bin', size: 20 * MiB, sent: 5 * MiB, speed: MiB, state: 'uploading', started: 0 },
      () => undefined
    );
    expect(row.querySelector('.bhub-Transfer-status')!.textContent).toBe('5 MiB of 20 MiB (25 %), 1 MiB/s, 15 s left');
    expect(row.querySelector('[role="progressbar"]')!.getAttribute('aria-valuenow')).toBe('25');
    expect(row.querySelector('[data-do="cancel"]')).not.toBeNull();
    expect(row.querySelector('.bhub-Transfer-name')!.textContent).toBe('data/big.bin');
    const done = uploadRow({ key: 'u2', folder: 'id1', folderName: 'data', path: 'a', size: MiB, sent: MiB, speed: MiB, state: 'done', started: 0 }, () => undefined);
    expect(done.querySelector('[data-do="cancel"]')).toBeNull();
    expect(done.querySelector('.bhub-Transfer-status')!.textContent).toBe('Done: 1 MiB of 1 MiB (100 %), 1 MiB/s');
    const resumed: string[] = [];
    const list = transferList([], [], [
      { upload_id: 'p1', folder: 'id1', folder_name: 'data', path: 'big.bin', size: 20 * MiB, fingerprint: 'f', offset: 10 * MiB, updated_at: 0 }
    ], { cancel: () => undefined, resume: p => resumed.push(p.upload_id), discard: () => undefined });
    expect(list.querySelector('.bhub-Pending .bhub-Transfer-name')!.textContent).toBe('data/big.bin');
    expect(list.querySelector('.bhub-Pending .bhub-Transfer-status')!.textContent).toBe(
      'Interrupted at 50 %. Pick the same file again to resume.'
    );
    (list.querySelector('[data-do="resume"]') as HTMLElement).click();
    expect(resumed).toEqual(['p1']);
  });
});
