import { Router } from 'express';
import type { MirrorDocument } from '../mirrors/model.js';
import type { MirrorRepository } from '../mirrors/repository.js';

/**
 * `GET /mirrors`: the public mirror list — enabled, non-private mirrors with country,
 * bandwidth, the publication they were verified to hold and whether that is current. HTML
 * for people; JSON with `Accept: application/json`.
 */
export interface PublicListDeps {
  repository: MirrorRepository;
  currentPublication: () => number | null;
}

interface PublicMirror {
  name: string;
  url: string;
  country: string;
  continent: string;
  bandwidth: number;
  publication: number | null;
  upToDate: boolean;
  families: string[];
  status: 'active' | 'disabled';
  lastCrawledAt: string | null;
}

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

function toPublic(doc: MirrorDocument, current: number | null): PublicMirror {
  return {
    name: doc.name,
    url: doc.baseUrl,
    country: doc.country,
    continent: doc.continent,
    bandwidth: doc.bandwidth,
    publication: doc.publication,
    upToDate: doc.publication !== null && current !== null && doc.publication >= current,
    families: doc.families ?? doc.learnedFamilies,
    status: doc.autoDisabled ? 'disabled' : 'active',
    lastCrawledAt: doc.lastCrawledAt,
  };
}

function renderHtml(mirrors: PublicMirror[], current: number | null): string {
  const rows = mirrors
    .map((m) => {
      const cells = [
        `<a href="${escapeHtml(m.url)}/" rel="nofollow">${escapeHtml(m.name)}</a>`,
        escapeHtml(m.country),
        escapeHtml(m.continent),
        String(m.bandwidth),
        m.publication === null ? '–' : String(m.publication),
        m.upToDate ? 'yes' : 'no',
        escapeHtml(m.families.join(', ')),
        m.status,
      ];
      return `<tr>${cells.map((c) => `<td>${c}</td>`).join('')}</tr>`;
    })
    .join('\n');
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Flotilla mirrors</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:left}</style>
</head>
<body>
<h1>Public mirrors</h1>
<p>Current publication: ${current === null ? 'none yet' : String(current)}. ${mirrors.length} mirror(s).</p>
<table>
<thead><tr><th>Mirror</th><th>Country</th><th>Continent</th><th>Bandwidth (Mbit/s)</th><th>Publication</th><th>Current</th><th>Families</th><th>Status</th></tr></thead>
<tbody>
${rows}
</tbody>
</table>
</body>
</html>
`;
}

export function publicListRouter(deps: PublicListDeps): Router {
  const router = Router();
  router.get('/mirrors', async (req, res) => {
    const current = deps.currentPublication();
    const mirrors = (await deps.repository.list())
      .filter((m) => m.enabled && !m.private)
      .map((m) => toPublic(m, current));
    res.setHeader('Vary', 'Accept');
    if (req.accepts(['text/html', 'application/json']) === 'application/json') {
      res.json({ publication: current, mirrors });
      return;
    }
    res.type('html').send(renderHtml(mirrors, current));
  });
  return router;
}
