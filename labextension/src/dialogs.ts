/** Small forms in JupyterLab dialogs: one description of fields, the values back (null: cancelled). */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

export interface Field {
  name: string;
  label: string;
  type?: 'text' | 'select' | 'checkbox' | 'textarea';
  value?: string | boolean;
  options?: Array<{ value: string; label: string }>;
  placeholder?: string;
  help?: string;
}

export type Values = Record<string, string | boolean>;

class FormBody extends Widget implements Dialog.IBodyWidget<Values> {
  private _inputs: Array<[Field, HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement]> = [];

  constructor(fields: Field[], text?: string) {
    super();
    this.addClass('bhub-Form');
    if (text) {
      const p = document.createElement('p');
      p.className = 'bhub-Form-text';
      p.textContent = text;
      this.node.append(p);
    }
    for (const f of fields) {
      const label = document.createElement('label');
      label.className = `bhub-Form-field bhub-Form-${f.type || 'text'}`;
      let input: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement;
      if (f.type === 'select') {
        const sel = document.createElement('select');
        for (const o of f.options || []) {
          const opt = document.createElement('option');
          opt.value = o.value;
          opt.textContent = o.label;
          sel.append(opt);
        }
        if (typeof f.value === 'string') {
          sel.value = f.value;
        }
        input = sel;
      } else if (f.type === 'textarea') {
        input = document.createElement('textarea');
        input.value = String(f.value ?? '');
        (input as HTMLTextAreaElement).rows = 3;
      } else {
        const inp = document.createElement('input');
        inp.type = f.type === 'checkbox' ? 'checkbox' : 'text';
        if (f.type === 'checkbox') {
          inp.checked = !!f.value;
        } else {
          inp.value = String(f.value ?? '');
        }
        input = inp;
      }
      input.name = f.name;
      input.classList.add('jp-mod-styled');
      if (f.placeholder && 'placeholder' in input) {
        input.placeholder = f.placeholder;
      }
      const span = document.createElement('span');
      span.textContent = f.label;
      if (f.type === 'checkbox') {
        label.append(input, span);
      } else {
        label.append(span, input);
      }
      if (f.help) {
        const small = document.createElement('small');
        small.textContent = f.help;
        label.append(small);
      }
      this.node.append(label);
      this._inputs.push([f, input]);
    }
  }

  getValue(): Values {
    const out: Values = {};
    for (const [f, input] of this._inputs) {
      out[f.name] = f.type === 'checkbox' ? (input as HTMLInputElement).checked : input.value;
    }
    return out;
  }
}

export async function formDialog(title: string, fields: Field[], ok = 'OK', text?: string): Promise<Values | null> {
  const result = await showDialog({
    title,
    body: new FormBody(fields, text),
    buttons: [Dialog.cancelButton(), Dialog.okButton({ label: ok })],
    focusNodeSelector: 'input, select, textarea'
  });
  return result.button.accept ? (result.value as Values) : null;
}

/** A yes/no question; `warn` makes the yes button red (data goes, kernels stop). */
export async function confirm(title: string, text: string, yes: string, warn = true): Promise<boolean> {
  const result = await showDialog({
    title,
    body: text,
    buttons: [Dialog.cancelButton(), warn ? Dialog.warnButton({ label: yes }) : Dialog.okButton({ label: yes })]
  });
  return result.button.accept;
}
