'use strict';
'require view';
'require dom';
'require poll';
'require rpc';
'require ui';

/*
 * roadie's status page. Everything comes from the `roadie` ubus object
 * (rpcd runs /usr/libexec/rpcd/roadie, which is `roadie rpcd`): its replies
 * are the JSON of `roadie call METHOD`, its errors `{ "error": "..." }`.
 * The access it needs is /usr/share/rpcd/acl.d/luci-app-roadie.json.
 *
 * Nothing here waits on the daemon: a status call that fails, or does not
 * answer within STATUS_TIMEOUT, shows "roadie is not running" and the
 * next poll tries again. Text that comes from the daemon is always put in
 * text nodes, never parsed as HTML, and only http(s) URLs become links.
 */

/* seconds between two status calls */
const POLL_INTERVAL = 5;
/* milliseconds a status call may take before the page says so */
const STATUS_TIMEOUT = 8000;
/* moves listed in the history table */
const HISTORY_ROWS = 10;

const callStatus = rpc.declare({
	object: 'roadie',
	method: 'status',
	reject: true
});

const callReload = rpc.declare({
	object: 'roadie',
	method: 'reload',
	reject: true
});

const callReaddress = rpc.declare({
	object: 'roadie',
	method: 'readdress',
	reject: true
});

const callTunnelRestart = rpc.declare({
	object: 'roadie',
	method: 'tunnel.restart',
	params: [ 'name' ],
	reject: true
});

/* A tunnel's state and the LuCI label class it is shown in. */
const STATES = {
	up: [ 'success', _('up') ],
	connecting: [ 'notice', _('connecting') ],
	backoff: [ 'warning', _('backoff') ],
	blocked: [ 'warning', _('blocked') ],
	failed: [ 'important', _('failed') ]
};

/* `promise`, or a rejection once `ms` have passed without an answer. */
function within(promise, ms) {
	return new Promise(function(resolveFn, rejectFn) {
		const timer = window.setTimeout(function() {
			rejectFn(new Error(_('no answer within %d seconds').format(ms / 1000)));
		}, ms);

		promise.then(function(value) {
			window.clearTimeout(timer);
			resolveFn(value);
		}, function(err) {
			window.clearTimeout(timer);
			rejectFn(err);
		});
	});
}

/* `{ status }` from the daemon, or `{ down: why }`; never rejects. */
function fetchStatus() {
	return within(callStatus(), STATUS_TIMEOUT).then(function(reply) {
		if (!L.isObject(reply))
			return { down: _('unexpected reply from the roadie ubus object') };

		if (reply.error != null)
			return { down: String(reply.error) };

		return { status: reply };
	}, function(err) {
		return { down: String((err && err.message) || err) };
	});
}

/* What to show for a value the daemon may leave out. */
function text(value) {
	return (value == null || value === '') ? '-' : String(value);
}

/* A link for an http(s) URL (the page's next step), plain text otherwise. */
function link(url) {
	if (typeof(url) == 'string' && /^https?:\/\/[^\s"'<>`]+$/i.test(url))
		return E('a', { 'href': url, 'target': '_blank', 'rel': 'noreferrer noopener' }, [ url ]);

	return E('span', {}, [ text(url) ]);
}

function label(cls, content) {
	return E('span', { 'class': 'label' + (cls ? ' ' + cls : '') }, [ content ]);
}

function time(unix) {
	return (unix > 0) ? new Date(unix * 1000).toLocaleString() : '-';
}

function table(id, titles, rows, placeholder) {
	const head = E('tr', { 'class': 'tr table-titles' }, titles.map(function(t) {
		return E('th', { 'class': 'th' }, [ t ]);
	}));

	if (!rows.length)
		rows = [ E('tr', { 'class': 'tr placeholder' }, [
			E('td', { 'class': 'td', 'colspan': titles.length }, [ E('em', {}, [ placeholder ]) ])
		]) ];

	return E('table', { 'class': 'table', 'id': id }, [ head ].concat(rows));
}

/* A row of `titles.length` cells, each with its column title for LuCI's narrow layout. */
function row(attrs, titles, cells) {
	return E('tr', Object.assign({ 'class': 'tr' }, attrs), cells.map(function(c, i) {
		return E('td', { 'class': 'td', 'data-title': titles[i] }, Array.isArray(c) ? c : [ c ]);
	}));
}

/* A two-column table of label and value. */
function facts(id, pairs) {
	return E('table', { 'class': 'table', 'id': id }, pairs.map(function(p) {
		return E('tr', { 'class': 'tr', 'data-fact': p[0] }, [
			E('td', { 'class': 'td left', 'width': '33%' }, [ p[1] ]),
			E('td', { 'class': 'td left' }, Array.isArray(p[2]) ? p[2] : [ p[2] ])
		]);
	}));
}

function section(id, title) {
	return E('div', { 'class': 'cbi-section', 'id': id }, [
		E('h3', {}, [ title ]),
		E('div', { 'class': 'cbi-section-node' })
	]);
}

return view.extend({
	load: function() {
		return fetchStatus();
	},

	render: function(result) {
		/* LuCI's own rule for its footer buttons: read-only users get no actions. */
		this.readonly = !L.hasViewPermission();

		this.node = E('div', { 'id': 'roadie-status' }, [
			E('h2', {}, [ _('roadie') ]),
			E('div', { 'class': 'cbi-map-descr' }, [
				_('The uplinks, the cluster LAN and the reverse SSH tunnels as the roadie daemon sees them, refreshed every %d seconds.').format(POLL_INTERVAL)
			]),
			E('div', { 'id': 'roadie-down', 'class': 'alert-message warning hidden' }),
			E('div', { 'id': 'roadie-captive', 'class': 'alert-message warning hidden' }),
			E('div', { 'id': 'roadie-config-problem', 'class': 'alert-message error hidden' }),
			E('div', { 'id': 'roadie-body' }, [
				section('roadie-daemon', _('Daemon')),
				section('roadie-uplinks', _('Uplinks')),
				section('roadie-lan', _('Cluster LAN')),
				section('roadie-tunnels', _('Tunnels'))
			]),
			E('div', { 'class': 'cbi-section', 'id': 'roadie-actions' }, [
				E('h3', {}, [ _('Actions') ]),
				E('div', { 'class': 'cbi-section-node' }, [
					E('button', {
						'class': 'btn cbi-button cbi-button-action',
						'id': 'roadie-readdress',
						'disabled': this.readonly || null,
						'click': ui.createHandlerFn(this, 'handleReaddress')
					}, [ _('Re-evaluate the LAN now') ]),
					' ',
					E('button', {
						'class': 'btn cbi-button cbi-button-reload',
						'id': 'roadie-reload',
						'disabled': this.readonly || null,
						'click': ui.createHandlerFn(this, 'handleReload')
					}, [ _('Reload the configuration') ]),
					E('div', { 'id': 'roadie-result' })
				])
			])
		]);

		this.update(result);
		poll.add(L.bind(this.refresh, this), POLL_INTERVAL);

		return this.node;
	},

	refresh: function() {
		return fetchStatus().then(L.bind(this.update, this));
	},

	part: function(id) {
		return this.node.querySelector('#' + id);
	},

	body: function(id) {
		return this.part(id).querySelector('.cbi-section-node');
	},

	/* Shows `content` in the banner `id`, or hides it when there is none. */
	banner: function(id, content) {
		const node = this.part(id);

		if (content == null) {
			node.classList.add('hidden');
			dom.content(node, null);
		}
		else {
			dom.content(node, content);
			node.classList.remove('hidden');
		}
	},

	update: function(result) {
		if (result.down != null) {
			this.banner('roadie-down', [
				E('strong', {}, [ _('roadie is not running') ]), ' ',
				E('span', { 'class': 'roadie-why' }, [ '(' + result.down + ')' ]), ' ',
				_('The page tries again every %d seconds.').format(POLL_INTERVAL)
			]);
			this.banner('roadie-captive', null);
			this.banner('roadie-config-problem', null);
			this.part('roadie-body').classList.add('hidden');
			return;
		}

		const s = result.status;

		this.banner('roadie-down', null);
		this.part('roadie-body').classList.remove('hidden');
		this.renderCaptive(s.captive);
		this.banner('roadie-config-problem', (L.isObject(s.config) && s.config.problem) ? [
			E('strong', {}, [ _('The configuration on disk is not the one running:') ]), ' ',
			E('span', { 'class': 'roadie-why' }, [ String(s.config.problem) ])
		] : null);
		this.renderDaemon(s);
		this.renderUplinks(Array.isArray(s.wan) ? s.wan : []);
		this.renderLan(L.isObject(s.lan) ? s.lan : {});
		this.renderTunnels(Array.isArray(s.tunnels) ? s.tunnels : []);
	},

	renderCaptive: function(c) {
		if (!L.isObject(c)) {
			this.banner('roadie-captive', null);
			return;
		}

		this.banner('roadie-captive', [
			E('strong', {}, [ _('Captive portal') ]), ' ',
			_('The uplink wants a login at'), ' ', link(c.url), '. ',
			_('Open it from a device on the LAN; the tunnels are held until the portal lets the router through.'), ' ',
			E('small', {}, [ _('Seen since %s').format(time(c.since)) ])
		]);
	},

	renderDaemon: function(s) {
		const config = L.isObject(s.config) ? s.config : {};
		const pairs = [
			[ 'version', _('Version'), text(s.version) ],
			[ 'uptime', _('Running for'), '%t'.format(s.uptime_s || 0) ],
			[ 'config', _('Configuration'), text(config.path) ],
			[ 'reloads', _('Reloads'), text(config.reloads) ]
		];

		if (config.reload_error)
			pairs.push([ 'reload-error', _('Last reload refused'), [
				label('important', _('refused')), ' ', String(config.reload_error)
			] ]);

		if (L.isObject(s.probe))
			pairs.push([ 'probe', _('Internet check'), [
				String(s.probe.result), ' ', E('small', {}, [
					'(%s, %s)'.format(text(s.probe.url), time(s.probe.at))
				])
			] ]);

		dom.content(this.body('roadie-daemon'), facts('roadie-daemon-facts', pairs));
	},

	renderUplinks: function(wan) {
		const titles = [ _('Interface'), _('State'), _('Addresses'), _('Gateway') ];

		dom.content(this.body('roadie-uplinks'), table('roadie-uplink-table', titles, wan.map(function(w) {
			const addrs = Array.isArray(w.addresses) ? w.addresses : [];

			return row({ 'data-uplink': text(w.interface) }, titles, [
				text(w.interface),
				w.up ? label('success', _('up')) : label('', _('down')),
				addrs.length ? addrs.join(', ') : _('no address'),
				text(w.gateway)
			]);
		}), _('No uplink configured')));
	},

	renderLan: function(lan) {
		const history = Array.isArray(lan.history) ? lan.history : [];
		const moved = lan.prefix != null && lan.prefix != lan.home;
		let why = null;

		for (let i = history.length - 1; i >= 0 && why == null; i--)
			if (history[i].to == lan.prefix)
				why = history[i].reason;

		let movedText;
		if (moved)
			movedText = [ label('warning', _('moved')), ' ', text(why) ];
		else
			movedText = [ label('success', _('at home')) ];

		if (lan.settling)
			movedText.push(' ', E('em', {}, [ _('(waiting for the uplink to settle)') ]));

		const pairs = [
			[ 'interface', _('Interface'), text(lan.interface) ],
			[ 'address', _('Router address'), text(lan.address) ],
			[ 'home', _('Home prefix'), text(lan.home) ],
			[ 'prefix', _('Current prefix'), text(lan.prefix) ],
			[ 'moved', _('Moved'), movedText ],
			[ 'collision', _('Collision'), L.isObject(lan.collision)
				? _('%s overlaps %s').format(text(lan.collision.prefix), text(lan.collision.what))
				: _('none') ],
			[ 'problem', _('Problem'), lan.problem
				? [ label('important', _('problem')), ' ', String(lan.problem) ]
				: _('none') ],
			[ 'hook', _('Hook, last run'), L.isObject(lan.hook)
				? [ lan.hook.ok ? label('success', _('ok')) : label('important', _('failed')), ' ',
				    text(lan.hook.message), ' ', E('small', {}, [ '(' + time(lan.hook.at) + ')' ]) ]
				: _('not run yet') ],
			[ 'evaluations', _('Evaluations'), text(lan.evaluations) ]
		];

		if (L.isObject(lan.apply))
			pairs.push([ 'apply', _('Last UCI change'), [
				lan.apply.ok ? label('success', _('ok')) : label('important', lan.apply.reverted ? _('reverted') : _('failed')),
				' ', text(lan.apply.message)
			] ]);

		const absorbed = Array.isArray(lan.absorbed) ? lan.absorbed : [];
		absorbed.forEach(function(a) {
			pairs.push([ 'absorbed-' + text(a.interface), _('Uplink %s absorbed').format(text(a.interface)), [
				label('success', _('absorbed')), ' ',
				_('its network %s (ours too) is %s here; the router is %s there').format(
					text(a.prefix), text(a.alias), text(a.lease))
			] ]);
		});
		if (lan.absorb_problem)
			pairs.push([ 'absorb-problem', _('Not absorbed'), String(lan.absorb_problem) ]);
		if (lan.dhcp_warning)
			pairs.push([ 'dhcp-warning', _('DHCP leases'), [ label('warning', _('slow')), ' ', String(lan.dhcp_warning) ] ]);

		const hostTitles = [ _('Host'), _('Address'), _('Answers'), _('Followed the last move') ];
		const hosts = (Array.isArray(lan.hosts) ? lan.hosts : []).map(function(h) {
			let answers;
			if (h.reachable === true)
				answers = label('success', _('yes'));
			else if (h.reachable === false)
				answers = label('important', _('no'));
			else
				answers = _('not asked yet');
			let followed;
			if (h.followed_ms != null)
				followed = _('after %s s').format((h.followed_ms / 1000).toFixed(1));
			else if (h.still_at != null)
				followed = [ label('important', _('no')), ' ',
					_('still at %s (a static address? move it, e.g. from the hook)').format(text(h.still_at)) ];
			else
				followed = '-';
			return row({ 'data-host': text(h.name) }, hostTitles, [ text(h.name), text(h.address), answers, followed ]);
		});

		const titles = [ _('When'), _('From'), _('To'), _('Why') ];
		const moves = history.slice(-HISTORY_ROWS).reverse().map(function(h) {
			return row({ 'data-move': text(h.to) }, titles, [ time(h.at), text(h.from), text(h.to), text(h.reason) ]);
		});

		dom.content(this.body('roadie-lan'), [
			facts('roadie-lan-facts', pairs),
			E('h4', {}, [ _('Cluster hosts') ]),
			table('roadie-hosts', hostTitles, hosts, _('No hosts named in [[lan.host]] or DHCP reservations.')),
			E('h4', {}, [ _('Last moves') ]),
			table('roadie-history', titles, moves, _('The LAN has not moved.'))
		]);
	},

	renderTunnels: function(tunnels) {
		const titles = [ _('Tunnel'), _('State'), _('Public URL'), _('Target'), _('Ways out'),
			_('Traffic'), _('Reconnects'), _('Last error'), '' ];
		const self = this;

		dom.content(this.body('roadie-tunnels'), table('roadie-tunnel-table', titles, tunnels.map(function(t) {
			const st = STATES[t.state] || [ '', text(t.state) ];
			const urls = Array.isArray(t.public_urls) ? t.public_urls : [];
			const ways = Array.isArray(t.via) && t.via.length ? t.via
				: [ { server: t.server, remote: t.remote, active: true, healthy: t.state == 'up' } ];

			return row({ 'data-tunnel': text(t.name) }, titles, [
				E('strong', {}, [ text(t.name) ]),
				E('span', { 'class': 'label ' + st[0], 'data-state': text(t.state) }, [ st[1] ]),
				urls.length ? urls.map(function(u, i) {
					return E('div', {}, [ link(u) ]);
				}) : '-',
				text(t.target),
				ways.map(function(w, i) {
					const parts = [ '%s %s'.format(text(w.server), text(w.remote)), ' ',
						w.healthy ? label('success', _('healthy')) : label('important', _('down')) ];

					if (w.active)
						parts.push(' ', E('strong', {}, [ _('active') ]));

					if (!w.healthy && w.last_error)
						parts.push(' ', E('small', {}, [ String(w.last_error) ]));

					return E('div', { 'data-way': String(i), 'data-active': w.active ? 'true' : 'false' }, parts);
				}),
				[
					E('div', {}, [ _('%1024mB in, %1024mB out').format(t.bytes_in || 0, t.bytes_out || 0) ]),
					E('small', {}, [
						N_(t.connections || 0, '%d connection', '%d connections').format(t.connections || 0),
						', ', _('%d open').format(t.active || 0)
					])
				],
				E('span', { 'class': 'roadie-reconnects' }, [ text(t.reconnects) ]),
				text(t.last_error),
				E('button', {
					'class': 'btn cbi-button cbi-button-action',
					'disabled': self.readonly || null,
					'click': ui.createHandlerFn(self, 'handleRestart', String(t.name))
				}, [ _('Restart') ])
			]);
		}), _('No tunnels configured')));
	},

	/* Shows what `method` answered, then refreshes the page. */
	act: function(method, call) {
		const out = this.part('roadie-result');
		const show = function(ok, content) {
			dom.content(out, E('div', {
				'class': 'alert-message ' + (ok ? 'success' : 'error'),
				'data-method': method
			}, [ E('strong', {}, [ (ok ? _('%s replied:') : _('%s failed:')).format(method) ]), ' ', content ]));
		};

		return call.then(function(reply) {
			if (L.isObject(reply) && reply.error != null)
				show(false, E('span', {}, [ String(reply.error) ]));
			else
				show(true, E('pre', {}, [ JSON.stringify(reply, null, 2) ]));
		}, function(err) {
			show(false, E('span', {}, [ String((err && err.message) || err) ]));
		}).then(L.bind(this.refresh, this));
	},

	handleRestart: function(name, ev) {
		return this.act('tunnel.restart', callTunnelRestart(name));
	},

	handleReaddress: function(ev) {
		return this.act('readdress', callReaddress());
	},

	handleReload: function(ev) {
		return this.act('reload', callReload());
	},

	handleSave: null,
	handleSaveApply: null,
	handleReset: null
});
