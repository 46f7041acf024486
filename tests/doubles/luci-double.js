/*
 * luci-double.js: a stand-in for LuCI's client runtime, for testing
 * luci-app-roadie's view (view/roadie/status.js) in a browser without LuCI.
 * tests/luci_view.rs serves it with luci-double.html and luci-double.css.
 *
 * It has what the view uses, and what LuCI does to load a view, written
 * here to behave as LuCI 24.10's modules/luci-base/htdocs/luci-static/
 * resources/ do (nothing is copied from them):
 *
 *   luci.js  the `L` object (env, bind, isObject, hasViewPermission, url,
 *            error, require), the class system (`baseclass`: extend,
 *            singleton, isSubclass), `dom` (elem, parse, append, content,
 *            attr, create), `poll` (add, remove, start, stop, active: a 1 s
 *            tick, an entry runs again only after its last promise
 *            settled), `view` (load -> render -> #view, footer);
 *   cbi.js   `E()`, `_()`, `N_()`, String.prototype.format (%s %d %f %x %h %q %t
 *            %m, padding, precision);
 *   rpc.js   `rpc.declare()`: positional params to named ones, a JSON-RPC
 *            2.0 "call" [session, object, method, params] POSTed to
 *            L.env.ubuspath, HTTP and JSON-RPC errors reject, `result` is
 *            [ubus status, data], `reject` turns a non-zero status into a
 *            rejection (else the status is the value), `expect`, `filter`;
 *   ui.js    `createHandlerFn()` (the button is disabled and `spinning`
 *            until the handler's promise settles), `addNotification()`,
 *            `instantiateView()`.
 *
 * Left out: request batching (LuCI sends calls issued in one animation
 * frame as one JSON array; here each is its own POST), translation
 * catalogues (`_()` looks up `window.TR` by the string itself, not by
 * LuCI's hash), forms, uci, widgets, the menu, the session-expiry dialog.
 *
 * For the test, `window.__luciDouble` records the strings passed to `_()`
 * and every error the runtime saw.
 */
(function(window, document) {
	'use strict';

	const record = window.__luciDouble = { translated: {}, errors: [] };

	window.addEventListener('error', function(ev) {
		record.errors.push(String(ev.message));
	});
	window.addEventListener('unhandledrejection', function(ev) {
		record.errors.push(String(ev.reason && ev.reason.message || ev.reason));
	});

	/* --- cbi.js: _() and String.prototype.format ------------------------ */

	window._ = function(s, context) {
		record.translated[s] = true;
		return (window.TR && window.TR[s]) || s;
	};

	/* The plural form for n (English's rule; a catalogue has its own). */
	window.N_ = function(n, singular, plural, context) {
		record.translated[singular] = true;
		record.translated[plural] = true;
		const s = (n != 1) ? plural : singular;
		return (window.TR && window.TR[s]) || s;
	};

	const esc = function(s, pairs) {
		if (s == null || typeof(s) == 'object' || typeof(s) == 'function')
			return '';
		s = String(s);
		for (const [ from, to ] of pairs)
			s = s.split(from).join(to);
		return s;
	};
	const HTML = [ [ '&', '&#38;' ], [ '"', '&#34;' ], [ "'", '&#39;' ], [ '<', '&#60;' ], [ '>', '&#62;' ] ];
	const QUOTE = [ [ '"', '&#34;' ], [ "'", '&#39;' ] ];

	const duration = function(secs) {
		let s = Math.floor(+secs || 0), m = Math.floor(s / 60), h = Math.floor(m / 60);
		const d = Math.floor(h / 24);
		s %= 60; m %= 60; h %= 24;
		return d > 0 ? `${d}d ${h}h ${m}m ${s}s` : `${h}h ${m}m ${s}s`;
	};

	/* %[pad][-][width][.precision]type, types as cbi.js has them. */
	String.prototype.format = function(...args) {
		const spec = /%(?:('.|0| )?(-)?(\d+)?(\.\d+)?([%bcdufoxXqhjtms]))/g;
		let n = 0;

		return String(this).replace(spec, function(all, pad, left, width, prec, type) {
			if (type == '%')
				return '%';
			if (n >= args.length)
				return '';

			const v = args[n++];
			const p = prec ? +prec.substring(1) : -1;
			let out;

			switch (type) {
			case 'b': out = Math.floor(+v || 0).toString(2); break;
			case 'c': out = String.fromCharCode(+v || 0); break;
			case 'd': out = Math.floor(+v || 0).toFixed(0); break;
			case 'u': { const x = +v || 0; out = Math.floor(x < 0 ? 0x100000000 + x : x).toFixed(0); break; }
			case 'f': out = (p > -1) ? (+v || 0).toFixed(p) : String(+v || 0); break;
			case 'o': out = Math.floor(+v || 0).toString(8); break;
			case 'x': out = Math.floor(+v || 0).toString(16); break;
			case 'X': out = Math.floor(+v || 0).toString(16).toUpperCase(); break;
			case 'h': out = esc(v, HTML); break;
			case 'q': out = esc(v, QUOTE); break;
			case 'j': out = JSON.stringify(v); break;
			case 't': out = duration(v); break;
			case 'm': {
				/* %1024mB: the number scaled by the width (1000 if none), with a unit */
				const base = width ? +width : 1000;
				const units = [ ' ', ' K', ' M', ' G', ' T', ' P', ' E' ];
				let x = +v || 0, i = 0;
				while (i < units.length - 1 && x > base) {
					x /= base;
					i++;
				}
				out = i ? x.toFixed(p > -1 ? p : 2) + units[i] + (base == 1024 ? 'i' : '') : x + ' ';
				width = null;
				break;
			}
			default: out = (v == null) ? '' : String(v);
			}

			if (width) {
				const fill = pad ? pad.replace(/^'/, '') : ' ';
				while (out.length < +width)
					out = left ? out + ' ' : fill + out;
			}

			return out;
		});
	};

	/* --- luci.js: the class system --------------------------------------- */

	const Class = Object.assign(function() {}, {
		extend(properties) {
			const Parent = this;
			const Ctor = function(...args) {
				if (!(this instanceof Ctor))
					throw new TypeError('Constructor must not be called without "new"');
				if (typeof(this.__init__) == 'function')
					this.__init__(...args);
			};

			Ctor.prototype = Object.create(Parent.prototype);
			for (const key of Object.keys(properties))
				Object.defineProperty(Ctor.prototype, key, { value: properties[key], writable: true });
			Object.defineProperty(Ctor.prototype, 'constructor', { value: Ctor });
			Ctor.extend = Parent.extend;
			Ctor.singleton = Parent.singleton;
			Ctor.isSubclass = Parent.isSubclass;

			return Ctor;
		},

		singleton(properties, ...args) {
			return new (this.extend(properties))(...args);
		},

		isSubclass(c) {
			return typeof(c) == 'function' && c.prototype instanceof this;
		}
	});

	/* --- luci.js: dom ----------------------------------------------------- */

	const parser = new DOMParser();

	const dom = Class.singleton({
		elem(e) {
			return e != null && typeof(e) == 'object' && 'nodeType' in e;
		},

		parse(s) {
			try {
				return parser.parseFromString(s, 'text/html').body.firstChild;
			}
			catch (e) {
				return null;
			}
		},

		/* An array: nodes as they are, anything else as text. A function:
		 * called with the node, its result appended. A node: appended.
		 * Anything else: becomes the node's innerHTML (as in LuCI). */
		append(node, children) {
			if (!this.elem(node))
				return null;

			if (Array.isArray(children)) {
				for (const c of children)
					node.appendChild(this.elem(c) ? c : document.createTextNode(String(c)));
				return node.lastChild;
			}
			if (typeof(children) == 'function')
				return this.append(node, children(node));
			if (this.elem(children))
				return node.appendChild(children);
			if (children != null) {
				node.innerHTML = String(children);
				return node.lastChild;
			}
			return null;
		},

		content(node, children) {
			if (!this.elem(node))
				return null;
			while (node.firstChild)
				node.removeChild(node.firstChild);
			return this.append(node, children);
		},

		/* Functions become event listeners, objects JSON, null is skipped. */
		attr(node, key, val) {
			if (!this.elem(node))
				return null;

			const attrs = (key != null && typeof(key) == 'object') ? key
				: (typeof(key) == 'string') ? { [key]: val } : {};

			for (const k of Object.keys(attrs)) {
				const v = attrs[k];
				if (v == null)
					continue;
				if (typeof(v) == 'function')
					node.addEventListener(k, v);
				else if (typeof(v) == 'object')
					node.setAttribute(k, JSON.stringify(v));
				else
					node.setAttribute(k, v);
			}
		},

		/* create(html[, attrs][, children]): the second argument is the
		 * attributes when it is a non-array object (a node counts). */
		create(html, attrs, children) {
			if (!(attrs instanceof Object) || Array.isArray(attrs)) {
				children = attrs;
				attrs = null;
			}

			let node;
			if (Array.isArray(html)) {
				node = document.createDocumentFragment();
				for (const h of html)
					node.appendChild(this.create(h));
			}
			else if (this.elem(html))
				node = html;
			else if (html.charCodeAt(0) == 60)
				node = this.parse(html);
			else
				node = document.createElement(html);

			if (!node)
				return null;

			this.attr(node, attrs);
			this.append(node, children);
			return node;
		}
	});

	window.E = function(...args) {
		return dom.create(...args);
	};

	/* --- luci.js: poll ----------------------------------------------------- */

	const poll = Class.singleton({
		queue: [],

		add(fn, interval) {
			if (interval == null || interval <= 0)
				interval = env.pollinterval || null;
			if (isNaN(interval) || typeof(fn) != 'function')
				throw new TypeError('Invalid argument to LuCI.poll.add()');
			if (this.queue.some(e => e.fn === fn))
				return false;

			this.queue.push({ fn, interval: interval >>> 0, ready: true });
			if (this.tick != null && !this.active())
				this.start();
			return true;
		},

		remove(fn) {
			if (typeof(fn) != 'function')
				throw new TypeError('Invalid argument to LuCI.poll.remove()');
			const before = this.queue.length;
			this.queue = this.queue.filter(e => e.fn !== fn);
			if (!this.queue.length && this.stop())
				this.tick = 0;
			return this.queue.length != before;
		},

		start() {
			if (this.active())
				return false;
			this.tick = 0;
			if (this.queue.length) {
				this.timer = window.setInterval(() => this.step(), 1000);
				this.step();
				document.dispatchEvent(new CustomEvent('poll-start'));
			}
			return true;
		},

		stop() {
			if (!this.active())
				return false;
			document.dispatchEvent(new CustomEvent('poll-stop'));
			window.clearInterval(this.timer);
			delete this.timer;
			delete this.tick;
			return true;
		},

		/* Each second: every entry whose interval divides the tick runs,
		 * unless its last run has not settled yet. */
		step() {
			for (const e of this.queue) {
				if (this.tick % e.interval != 0 || !e.ready)
					continue;
				e.ready = false;
				Promise.resolve(e.fn()).finally(() => { e.ready = true; });
			}
			this.tick = (this.tick + 1) % 4294967296;
		},

		active() {
			return this.timer != null;
		}
	});

	/* --- luci.js: requests (what rpc and require need) -------------------- */

	const request = function(url, opt) {
		return new Promise(function(resolveFn, rejectFn) {
			const xhr = new XMLHttpRequest();
			const start = Date.now();

			xhr.open(opt.method || 'GET', url + (/\?/.test(url) ? '&' : '?') + Date.now(), true);
			xhr.responseType = 'text';
			if (opt.timeout)
				xhr.timeout = opt.timeout;
			xhr.onreadystatechange = function() {
				if (xhr.readyState != 4)
					return;
				if (xhr.status === 0 && xhr.statusText === '')
					rejectFn(new Error((opt.timeout && Date.now() - start >= opt.timeout)
						? 'XHR request timed out' : 'XHR request aborted by browser'));
				else
					resolveFn({
						ok: xhr.status >= 200 && xhr.status <= 299,
						status: xhr.status,
						statusText: xhr.statusText,
						url: xhr.responseURL || url,
						text: () => xhr.responseText,
						json: () => JSON.parse(xhr.responseText)
					});
			};
			if (opt.content != null) {
				xhr.setRequestHeader('Content-Type', 'application/json');
				xhr.send(JSON.stringify(opt.content));
			}
			else {
				xhr.send(null);
			}
		});
	};

	/* --- luci.js: L ---------------------------------------------------------- */

	const env = {};

	const raise = function(type, fmt, ...args) {
		const msg = fmt ? String.prototype.format.call(fmt, ...args) : 'Unspecified error';
		const e = new (window[type] || Error)(msg);
		e.name = type || 'Error';
		throw e;
	};

	const L = {
		env,
		loaded: false,

		bind(fn, self, ...args) {
			return Function.prototype.bind.call(fn, self, ...args);
		},

		isObject(v) {
			return v != null && typeof(v) == 'object';
		},

		raise,

		/* Reported (once) as a notification on top of the page, then thrown on. */
		error(type, fmt, ...args) {
			try {
				if (type instanceof Error)
					throw type;
				raise(type, fmt, ...args);
			}
			catch (e) {
				if (!e.reported) {
					record.errors.push(String(e.message || e));
					if (classes.ui)
						classes.ui.addNotification(e.name || _('Runtime error'), E('pre', {}, [ String(e.message) ]), 'danger');
					e.reported = true;
				}
				throw e;
			}
		},

		path(prefix, parts) {
			const url = [ prefix || '' ];
			for (const p of parts)
				if (/^(?:[a-zA-Z0-9_.%,;-]+\/)*[a-zA-Z0-9_.%,;-]+$/.test(p))
					url.push('/', p);
			if (url.length == 1)
				url.push('/');
			return url.join('');
		},

		url(...parts) {
			return this.path(env.scriptname, parts);
		},

		resource(...parts) {
			return this.path(env.resource, parts);
		},

		/* null: no access; false: read-only; true: may write (from the
		 * menu node's ACL groups, which the dispatcher puts in env). */
		hasViewPermission() {
			if (!this.isObject(env.nodespec) || !env.nodespec.satisfied)
				return null;
			return !env.nodespec.readonly;
		},

		/* Loads a class file the way LuCI does: the leading 'require X' and
		 * 'require X as Y' strings name its dependencies (loaded first and
		 * passed in as arguments), the file's code is the body of a function
		 * of (window, document, L, deps...) that returns a class, and the
		 * class is instantiated once. */
		require(name, from = []) {
			if (classes[name] != null) {
				if (from.indexOf(name) != -1)
					raise('DependencyError', 'Circular dependency: class "%s" depends on "%s"', name, from.join('" which depends on "'));
				return Promise.resolve(classes[name]);
			}

			const url = '%s/%s.js'.format(env.base_url, name.replace(/\./g, '/'));
			from = [ name ].concat(from);

			classes[name] = request(url, { method: 'GET' }).then(function(res) {
				if (!res.ok)
					raise('NetworkError', 'HTTP error %d while loading class file "%s"', res.status, url);

				const source = res.text();
				const deps = [], names = [];
				const pragma = /^\s*(?:\/\*[\s\S]*?\*\/\s*|\/\/[^\n]*\n\s*)*(['"])(.*?)\1\s*;?/;
				let rest = source, m;

				while ((m = pragma.exec(rest)) != null) {
					const r = /^require[ \t]+(\S+)(?:[ \t]+as[ \t]+([a-zA-Z_]\S*))?$/.exec(m[2]);
					if (r) {
						deps.push(L.require(r[1], from));
						names.push(r[2] || r[1].replace(/[^a-zA-Z0-9_]/g, '_'));
					}
					else if (!/^use[ \t]+strict$/.test(m[2])) {
						break;
					}
					rest = rest.substring(m[0].length);
				}

				return Promise.all(deps).then(function(instances) {
					let factory;
					try {
						factory = new Function('window', 'document', 'L', ...names,
							source + '\n//# sourceURL=' + res.url);
					}
					catch (e) {
						raise('SyntaxError', '%s\n  in %s', e.message, url);
					}

					const cls = factory.call(factory, window, document, L, ...instances);
					if (!Class.isSubclass(cls))
						L.error('TypeError', '"%s" factory yields invalid constructor', name);

					const instance = new cls();
					classes[name] = instance;
					return instance;
				});
			});

			return classes[name];
		}
	};

	/* --- luci.js: view ------------------------------------------------------- */

	const View = Class.extend({
		__init__() {
			dom.content(document.getElementById('view'),
				E('div', { 'class': 'spinning' }, [ _('Loading view…') ]));

			return Promise.resolve(this.load())
				.then(data => L.loaded ? data
					: new Promise(r => document.addEventListener('luci-loaded', () => r(data), { once: true })))
				.then(L.bind(this.render, this))
				.then(L.bind(function(nodes) {
					const vp = document.getElementById('view');
					dom.content(vp, nodes);
					dom.append(vp, this.addFooter());
				}, this))
				.catch(L.error);
		},

		load() {},

		render() {},

		handleSave(ev) { return Promise.resolve(); },

		handleSaveApply(ev) { return Promise.resolve(); },

		handleReset(ev) { return Promise.resolve(); },

		/* The page footer, unless the view set all three handlers to null. */
		addFooter() {
			const footer = E([]);
			if (!this.handleSaveApply && !this.handleSave && !this.handleReset)
				return footer;

			const readonly = !L.hasViewPermission() || null;
			footer.appendChild(E('div', { 'class': 'cbi-page-actions' }, [
				this.handleSaveApply ? E('button', { 'class': 'btn cbi-button cbi-button-apply', 'disabled': readonly,
					'click': classes.ui.createHandlerFn(this, 'handleSaveApply') }, [ _('Save & Apply') ]) : '', ' ',
				this.handleSave ? E('button', { 'class': 'btn cbi-button cbi-button-save', 'disabled': readonly,
					'click': classes.ui.createHandlerFn(this, 'handleSave') }, [ _('Save') ]) : '', ' ',
				this.handleReset ? E('button', { 'class': 'btn cbi-button cbi-button-reset', 'disabled': readonly,
					'click': classes.ui.createHandlerFn(this, 'handleReset') }, [ _('Reset') ]) : ''
			]));
			return footer;
		}
	});

	/* --- rpc.js -------------------------------------------------------------- */

	let rpcRequestID = 1;

	const rpc = Class.singleton({
		getSessionID() {
			return env.sessionid || '00000000000000000000000000000000';
		},

		getBaseURL() {
			return env.ubuspath;
		},

		getStatusText(code) {
			return [ _('Command OK'), _('Invalid command'), _('Invalid argument'), _('Method not found'),
				_('Resource not found'), _('No data received'), _('Permission denied'), _('Request timeout'),
				_('Not supported'), _('Unspecified error'), _('Connection lost') ][code] || _('Unknown error code');
		},

		/* The reply of one call, checked and shaped as rpc.js does. */
		handleReply(req, res) {
			if (!res.ok)
				raise('RPCError', 'RPC call to %s/%s failed with HTTP error %d: %s',
					req.object, req.method, res.status, res.statusText || '?');

			const msg = res.json();

			if (!L.isObject(msg) || msg.jsonrpc != '2.0')
				raise('RPCError', 'RPC call to %s/%s returned invalid message frame', req.object, req.method);
			if (L.isObject(msg.error) && msg.error.code && msg.error.message)
				raise('RPCError', 'RPC call to %s/%s failed with error %d: %s',
					req.object, req.method, msg.error.code, msg.error.message || '?');

			let ret = null;
			if (Array.isArray(msg.result)) {
				if (req.raise && msg.result[0] !== 0)
					raise('RPCError', 'RPC call to %s/%s failed with ubus code %d: %s',
						req.object, req.method, msg.result[0], this.getStatusText(msg.result[0]));
				ret = (msg.result.length > 1) ? msg.result[1] : msg.result[0];
			}

			/* expect: { key: default }: reply[key] ('' = the reply), or the
			 * default when it is missing or of another type. */
			if (req.expect) {
				const key = Object.keys(req.expect)[0];
				if (key != null) {
					const type = Object.prototype.toString;
					if (ret != null && key != '')
						ret = ret[key];
					if (ret == null || type.call(ret) != type.call(req.expect[key]))
						ret = req.expect[key];
				}
			}

			if (typeof(req.filter) == 'function') {
				req.priv[0] = ret;
				req.priv[1] = req.params;
				ret = req.filter.apply(this, req.priv);
			}

			return ret;
		},

		declare(options) {
			const self = this;

			return function(...args) {
				const params = {};
				let i = 0;

				if (Array.isArray(options.params))
					for (; i < options.params.length; i++)
						params[options.params[i]] = args[i];

				const req = {
					object: options.object,
					method: options.method,
					params,
					priv: [ undefined, undefined ].concat(args.slice(i)),
					expect: options.expect,
					filter: options.filter,
					raise: options.reject
				};
				const msg = {
					jsonrpc: '2.0',
					id: rpcRequestID++,
					method: 'call',
					params: [ self.getSessionID(), options.object, options.method, params ]
				};

				return request('%s/%s.%s'.format(env.ubuspath.replace(/\/$/, ''), options.object, options.method), {
					method: 'POST',
					content: msg,
					timeout: (env.rpctimeout || 20) * 1000
				}).then(res => self.handleReply(req, res));
			};
		}
	});

	/* --- ui.js ----------------------------------------------------------------- */

	const ui = Class.singleton({
		/* A banner on top of #maincontent, with a Dismiss button. */
		addNotification(title, children, ...classList) {
			const mc = document.querySelector('#maincontent') || document.body;
			const msg = E('div', { 'class': 'alert-message fade-in', 'style': 'display:flex' }, [
				E('div', { 'style': 'flex:10' }),
				E('div', { 'style': 'flex:1 1 auto; display:flex' }, [
					E('button', { 'class': 'btn', 'click': ev => ev.target.closest('.alert-message').remove() }, [ _('Dismiss') ])
				])
			]);

			if (title != null)
				dom.append(msg.firstElementChild, E('h4', {}, [ title ]));
			dom.append(msg.firstElementChild, children);
			for (const c of classList)
				msg.classList.add(c);
			mc.insertBefore(msg, mc.firstElementChild);
			return msg;
		},

		/* An event handler calling ctx[fn] (or fn) with the extra arguments
		 * and then the event; the button is disabled and `spinning` until
		 * what the handler returned has settled. */
		createHandlerFn(ctx, fn, ...extra) {
			if (typeof(fn) == 'string')
				fn = ctx[fn];
			if (typeof(fn) != 'function')
				return null;

			return function(...args) {
				const t = args[0].currentTarget;
				t.classList.add('spinning');
				t.disabled = true;
				if (t.blur)
					t.blur();
				Promise.resolve(fn.apply(ctx, extra.concat(args))).finally(function() {
					t.classList.remove('spinning');
					t.disabled = false;
				});
			};
		},

		instantiateView(path) {
			const className = 'view.%s'.format(path.replace(/\//g, '.'));

			return L.require(className).then(function(v) {
				if (!(v instanceof View))
					throw new TypeError('Loaded class %s is not a descendant of View'.format(className));
				return v;
			}).catch(function(err) {
				dom.content(document.querySelector('#view'), null);
				L.error(err);
			});
		}
	});

	const classes = { baseclass: Class, dom, poll, rpc, ui, view: View };

	/* What the page's header does in LuCI: `L = new LuCI(env)`; here
	 * `LuCI(env)`. Polling starts once the document is loaded. */
	window.LuCI = function(setenv) {
		const me = document.querySelector('script[src*="/luci-double.js"]');
		const base = (me && me.getAttribute('src') || '').replace(/\/luci-double\.js(?:\?.*)?$/, '');

		Object.assign(env, { base_url: base, resource: base, pollinterval: 5, ubuspath: '/ubus/' }, setenv);
		L.ui = ui;
		L.dom = dom;
		L.Poll = poll;
		L.view = View;
		L.Class = Class;

		document.addEventListener('DOMContentLoaded', function() {
			poll.start();
			L.loaded = true;
			document.dispatchEvent(new CustomEvent('luci-loaded'));
		});

		return L;
	};
})(window, document);
