// Handlebars templates from templates/, compiled on first use. Handlebars itself is loaded then
// too: the controller needs it only for zone and Caddyfile exports, and it costs ~3 MiB resident.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type Handlebars from 'handlebars';

const require = createRequire(import.meta.url);

export type HelperDelegate = Handlebars.HelperDelegate;

/** A render function for the template at `url` with its own `helpers` (strict, no HTML escaping), compiled on the first call. */
export function lazyTemplate<View>(url: URL, helpers: () => Record<string, HelperDelegate>): (view: View) => string {
  let compiled: Handlebars.TemplateDelegate<View> | undefined;
  return (view) => {
    if (!compiled) {
      const hb = (require('handlebars') as typeof Handlebars).create(); // private helper registry: other templates keep theirs
      hb.registerHelper(helpers());
      compiled = hb.compile<View>(readFileSync(url, 'utf8'), { noEscape: true, strict: true });
    }
    return compiled(view);
  };
}
