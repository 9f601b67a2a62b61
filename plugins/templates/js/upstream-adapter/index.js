// {{name}} (upstream-adapter): serves the packages listed in its
// configuration, whose tarballs it downloads through the host's `fetch` (only
// from hosts in the plugin's `allowed_hosts`). Replace `packument` with a call
// to your own source: `fetch` a listing and build the document.

import { fetch } from 'cairn:plugin/fetch@{{wit_version}}';
import { config } from 'cairn:plugin/host@{{wit_version}}';

// [plugins.config.packages.NAME] "1.0.0" = "https://host/NAME-1.0.0.tgz"
const packages = new Map();

export function init() {
    const settings = JSON.parse(config()).packages ?? {};
    if (typeof settings !== 'object' || Object.values(settings).some((v) => typeof v !== 'object' || Array.isArray(v))) {
        throw '`packages` must map names to {version = url}';
    }
    for (const [name, versions] of Object.entries(settings)) packages.set(name, versions);
}

export const adapter = {
    packument(name) {
        const versions = packages.get(name);
        if (versions === undefined) return undefined;
        const docs = Object.fromEntries(Object.entries(versions).map(([v, url]) => [v, { name, version: v, dist: { tarball: url } }]));
        const latest = Object.keys(versions).sort().at(-1);
        return JSON.stringify({ name, 'dist-tags': { latest }, versions: docs });
    },
    tarball(name, version, url) {
        let response;
        try {
            response = fetch({ method: 'GET', url, headers: [], body: undefined });
        } catch (e) {
            // A refused or failed request: the host's reason.
            throw String(e?.payload ?? e);
        }
        if (response.status !== 200) throw `GET ${url}: status ${response.status}`;
        return response.body;
    },
};
