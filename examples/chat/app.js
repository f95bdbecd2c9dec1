// The onebox chat example: log in or sign up over REST, then one room (`chat:lobby`) with its
// messages, who is here (presence) and the connection's state, all through onebox-client.
// No build step: the SDK's ESM build is served at /client/ (serve.mjs).
import { Onebox } from '/client/index.js';

const ROOM = 'chat:lobby';
/** Messages kept in localStorage to draw the room after a reload (the SDK resumes after them). */
const KEEP = 200;

const $ = (id) => document.getElementById(id);
const config = await fetch('config.json').then((r) => (r.ok ? r.json() : {}), () => ({}));
// ?api= wins (a page pointed at another server), then config.json, then this origin.
const API = new URLSearchParams(location.search).get('api') ?? config.api ?? location.origin;
const WS_URL = `${API.replace(/^http/, 'ws')}/v1/ws`;

let session = JSON.parse(sessionStorage.getItem('chat.session') ?? 'null');
let ob = null;
const names = new Map();
const members = new Set();
const shown = new Set();
let sending = Promise.resolve();

async function rest(path, body) {
  const res = await fetch(`${API}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const json = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(json.error?.message ?? `HTTP ${res.status}`);
  return json;
}

async function logIn(signup) {
  $('error').textContent = '';
  const email = $('email').value;
  const password = $('password').value;
  const displayName = $('name').value.trim();
  try {
    const { token, user } = signup
      ? await rest('/v1/auth/signup', { email, password, ...(displayName && { displayName }) })
      : await rest('/v1/auth/login', { email, password });
    session = { token, user };
    sessionStorage.setItem('chat.session', JSON.stringify(session));
    start();
  } catch (err) {
    $('error').textContent = err.message;
  }
}

function logOut(message = '') {
  ob?.close();
  ob = null;
  session = null;
  sessionStorage.removeItem('chat.session');
  $('chat').hidden = $('pause').hidden = $('logout').hidden = true;
  $('login').hidden = false;
  $('who').textContent = '';
  $('error').textContent = message;
  showState('closed', 'signed out');
}

const nameOf = (user) => names.get(user) ?? user;
const myName = () => session.user.displayName ?? session.user.email.split('@')[0];
const cacheKey = () => `chat:${session.user.id}:messages`;

function showState(state, text = state) {
  $('state').dataset.state = state;
  $('state').textContent = text;
}

function render(msg) {
  // The SDK delivers each message once, in offset order; the cache drawn at start may hold
  // the last few again (their positions were not saved yet when the page went away).
  if (msg.offset !== undefined && shown.has(msg.offset)) return;
  shown.add(msg.offset);
  if (msg.from && msg.data?.name) names.set(msg.from, msg.data.name);
  const li = document.createElement('li');
  li.dataset.offset = String(msg.offset ?? '');
  if (msg.from === session.user.id) li.className = 'mine';
  const from = document.createElement('span');
  from.className = 'from';
  from.textContent = msg.data?.name ?? nameOf(msg.from ?? 'server');
  const text = document.createElement('span');
  text.className = 'text';
  text.textContent = String(msg.data?.text ?? '');
  const ts = document.createElement('time');
  ts.className = 'ts';
  ts.textContent = new Date(msg.ts).toLocaleTimeString();
  li.append(from, text, ts);
  const list = $('messages');
  const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
  list.append(li);
  if (atBottom) list.scrollTop = list.scrollHeight;
}

function onMessage(msg) {
  render(msg);
  const cache = JSON.parse(localStorage.getItem(cacheKey()) ?? '[]');
  cache.push(msg);
  localStorage.setItem(cacheKey(), JSON.stringify(cache.slice(-KEEP)));
}

function renderMembers() {
  const ul = $('members');
  ul.replaceChildren(
    ...[...members].map((user) => {
      const li = document.createElement('li');
      li.dataset.user = user;
      li.textContent = user === session.user.id ? `${myName()} (you)` : nameOf(user);
      return li;
    }),
  );
  $('count').textContent = String(members.size);
}

/** Who is here now; afterwards the subscription's presence events keep the list. */
async function loadPresence(attempt = 0) {
  try {
    const p = await ob.presence(ROOM);
    members.clear();
    for (const m of p.members) members.add(m.user);
    renderMembers();
  } catch (err) {
    // Asked before the subscription was acknowledged: ask again shortly.
    if (err.code === 'not_subscribed' && attempt < 10 && ob) setTimeout(() => void loadPresence(attempt + 1), 200);
  }
}

function start() {
  $('login').hidden = true;
  $('chat').hidden = $('pause').hidden = $('logout').hidden = false;
  $('who').textContent = `${myName()} <${session.user.email}>`;
  names.set(session.user.id, myName());
  shown.clear();
  $('messages').replaceChildren();
  for (const msg of JSON.parse(localStorage.getItem(cacheKey()) ?? '[]')) render(msg);

  ob = new Onebox({
    url: WS_URL,
    getToken: () => session.token,
    storage: localStorage,
    storagePrefix: `chat:${session.user.id}`,
  });
  ob.on('state', (state, info) => {
    const why = info.reason ? ` (${info.reason})` : '';
    const retry = info.retryInMs !== undefined && state !== 'connected' ? `, retry in ${(info.retryInMs / 1000).toFixed(1)} s` : '';
    showState(state, `${state}${why}${retry}`);
    $('pause').textContent = info.reason === 'paused' ? 'Go online' : 'Go offline';
    if (state === 'connected') void loadPresence();
  });
  ob.on('unauthorized', () => logOut('Your session ended: log in again.'));
  const sub = ob.subscribe(ROOM, onMessage, { recover: true });
  sub.on('presence', (e) => {
    if (e.join) members.add(e.join);
    if (e.leave) members.delete(e.leave);
    renderMembers();
  });
  sub.on('recovered', () => ($('notice').textContent = ''));
  sub.on('gap', () => ($('notice').textContent = 'Some older messages could not be recovered.'));
  sub.on('error', (err) => ($('notice').textContent = err.message));
}

$('login').addEventListener('submit', (e) => {
  e.preventDefault();
  void logIn(false);
});
$('do-signup').addEventListener('click', () => {
  if ($('login').reportValidity()) void logIn(true);
});
$('logout').addEventListener('click', () => logOut());
$('pause').addEventListener('click', () => {
  // What a phone does when the app goes to the background, and back.
  if ($('pause').textContent === 'Go online') ob.resume();
  else ob.pause();
});
$('send').addEventListener('submit', (e) => {
  e.preventDefault();
  const input = $('text');
  const text = input.value.trim();
  if (!text || !ob) return;
  input.value = '';
  const client = ob;
  // One at a time, so the room gets them in the order they were typed (a publish is retried
  // across reconnects and rate limits with one idempotency key until acknowledged).
  sending = sending.then(() =>
    client.publish(ROOM, { text, name: myName() }).catch((err) => {
      $('notice').textContent = `Not sent: ${text} (${err.code ?? err.message})`;
    }),
  );
});
window.addEventListener('online', () => ob?.setOnline(true));
window.addEventListener('offline', () => ob?.setOnline(false));

if (session) start();
else logOut();
