// pollama web chat: a client of the native API (/api/tags, /api/show, /api/pull, /api/chat,
// /api/conversations). Model output is Markdown rendered by marked with raw HTML shown as text,
// then sanitized by DOMPurify; nothing a model writes is ever inserted as HTML unchecked.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const KEY_STORE = "pollama.apiKey";
  const MODEL_STORE = "pollama.model";

  const el = {
    app: $("app"), sidebar: $("sidebar"), scrim: $("scrim"), toggle: $("toggle-sidebar"),
    newChat: $("new-chat"), search: $("search"), list: $("conversations"),
    listEmpty: $("conversations-empty"), model: $("model"), pullOpen: $("pull-open"),
    title: $("title"), settingsOpen: $("settings-open"), thread: $("thread"),
    messages: $("messages"), welcome: $("welcome"), welcomeNote: $("welcome-note"),
    banner: $("banner"), bannerText: $("banner-text"), bannerClose: $("banner-close"),
    composer: $("composer"), attachments: $("attachments"), attach: $("attach"), file: $("file"),
    prompt: $("prompt"), send: $("send"), stop: $("stop"),
    settings: $("settings"), system: $("system"), temperature: $("temperature"),
    temperatureDefault: $("temperature-default"), temperatureValue: $("temperature-value"),
    pull: $("pull"), pullForm: $("pull-form"), pullName: $("pull-name"),
    pullProgress: $("pull-progress"), pullBar: $("pull-bar"), pullStatus: $("pull-status"),
    pullError: $("pull-error"), pullCancel: $("pull-cancel"), pullStart: $("pull-start"),
    confirm: $("confirm"), confirmText: $("confirm-text"),
    apikey: $("apikey"), apikeyForm: $("apikey-form"), apikeyInput: $("apikey-input"),
    apikeyError: $("apikey-error"),
  };

  const state = {
    models: [],
    capabilities: new Map(),   // model name → capabilities (from /api/show)
    conversation: null,        // the open stored conversation (id, title, system, options, messages)
    draft: { system: "", options: {} },  // settings of a new chat before its first message
    attachments: [],           // [{data: base64, url: object URL}]
    busy: null,                // {controller} while an answer streams
    query: "",
    imageCache: new Map(),     // digest → {blob, url}
    listToken: 0,
  };

  // -- API ----------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(message, status) { super(message); this.status = status; }
  }

  let keyPrompt = null;
  function askForKey(rejected) {
    if (!keyPrompt) {
      keyPrompt = new Promise((resolve) => {
        el.apikeyError.hidden = !rejected;
        el.apikeyInput.value = "";
        el.apikey.showModal();
        el.apikeyForm.onsubmit = (event) => {
          event.preventDefault();
          const key = el.apikeyInput.value.trim();
          if (!key) return;
          localStorage.setItem(KEY_STORE, key);
          el.apikey.close();
          keyPrompt = null;
          resolve();
        };
      });
    }
    return keyPrompt;
  }
  el.apikey.addEventListener("cancel", (event) => event.preventDefault());

  async function api(path, { method = "GET", body, signal } = {}) {
    for (;;) {
      const headers = {};
      const key = localStorage.getItem(KEY_STORE);
      if (key) headers.Authorization = `Bearer ${key}`;
      if (body !== undefined) headers["Content-Type"] = "application/json";
      const response = await fetch(path, {
        method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body),
      });
      if (response.status === 401) {
        await askForKey(Boolean(key));
        continue;
      }
      if (!response.ok) {
        let message = `${response.status} ${response.statusText}`;
        try {
          const data = await response.json();
          if (data && data.error) message = typeof data.error === "string" ? data.error : data.error.message;
        } catch { /* not JSON */ }
        throw new ApiError(message, response.status);
      }
      return response;
    }
  }
  const getJSON = async (path, options) => (await api(path, options)).json();

  async function* ndjson(response) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, cut).trim();
        buffer = buffer.slice(cut + 1);
        if (line) yield JSON.parse(line);
      }
    }
    buffer += decoder.decode();
    if (buffer.trim()) yield JSON.parse(buffer);
  }

  // -- Markdown ------------------------------------------------------------------------------

  const escapeHtml = (text) => String(text).replace(/[&<>"']/g, (c) => (
    { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));

  const markdown = new marked.Marked({ gfm: true, breaks: false });
  markdown.use({
    renderer: {
      // Raw HTML in an answer is text, never markup.
      html(token) { return token.block ? `<p>${escapeHtml(token.text)}</p>` : escapeHtml(token.text); },
      // Images are links: the page loads nothing from anywhere a model names.
      image(token) {
        const label = escapeHtml(token.text || token.href);
        return /^https?:/i.test(token.href)
          ? `<a href="${escapeHtml(token.href)}">${label}</a>` : label;
      },
    },
  });
  DOMPurify.addHook("afterSanitizeAttributes", (node) => {
    if (node.tagName === "A") {
      const href = node.getAttribute("href") || "";
      if (!/^(https?:|mailto:|#)/i.test(href)) node.removeAttribute("href");
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer");
    }
  });
  const PURIFY = {
    USE_PROFILES: { html: true },
    FORBID_TAGS: ["style", "img", "svg", "math", "form", "input", "button", "textarea", "select",
      "iframe", "video", "audio", "source", "picture"],
    FORBID_ATTR: ["style", "id"],
    ALLOW_DATA_ATTR: false,
  };

  const ICON_COPY = '<svg viewBox="0 0 24 24" aria-hidden="true"><rect x="9" y="9" width="11" height="11" rx="2"/><path d="M5 15V5a1 1 0 0 1 1-1h9"/></svg>';
  const ICON_CHECK = '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="m5 12 5 5 9-10"/></svg>';
  const ICON_RETRY = '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M20 11a8 8 0 1 0-2.3 5.7M20 5v6h-6"/></svg>';

  async function copyText(text) {
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      const area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.append(area);
      area.select();
      document.execCommand("copy");
      area.remove();
    }
  }

  function copyButton(getText, label = "Copy") {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "copy-btn";
    button.innerHTML = `${ICON_COPY}<span>${label}</span>`;
    button.addEventListener("click", async () => {
      await copyText(getText());
      button.innerHTML = `${ICON_CHECK}<span>Copied</span>`;
      setTimeout(() => { button.innerHTML = `${ICON_COPY}<span>${label}</span>`; }, 1500);
    });
    return button;
  }

  function renderMarkdown(target, text, { final }) {
    const html = DOMPurify.sanitize(markdown.parse(text), PURIFY);
    target.innerHTML = html;
    for (const pre of target.querySelectorAll("pre")) {
      const code = pre.querySelector("code");
      if (!code) continue;
      const source = code.textContent;
      const language = (/language-([\w+#.-]+)/.exec(code.className) || [])[1] || "";
      const block = document.createElement("div");
      block.className = "codeblock";
      const head = document.createElement("div");
      head.className = "codeblock-head";
      const name = document.createElement("span");
      name.textContent = language || "code";
      head.append(name, copyButton(() => source));
      pre.replaceWith(block);
      block.append(head, pre);
      if (language && hljs.getLanguage(language)) {
        code.classList.add("hljs");
        code.innerHTML = hljs.highlight(source, { language, ignoreIllegals: true }).value;
      } else if (final && source.length < 20000) {
        const guess = hljs.highlightAuto(source);
        code.classList.add("hljs");
        code.innerHTML = guess.value;
      }
    }
  }

  // -- small helpers -------------------------------------------------------------------------

  function showError(message) {
    el.bannerText.textContent = message;
    el.banner.hidden = false;
  }
  el.bannerClose.addEventListener("click", () => { el.banner.hidden = true; });

  function ago(iso) {
    const then = new Date(iso);
    const seconds = (Date.now() - then.getTime()) / 1000;
    if (seconds < 60) return "just now";
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
    if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
    if (seconds < 172800) return "yesterday";
    return then.toLocaleDateString(undefined, { month: "short", day: "numeric",
      year: then.getFullYear() === new Date().getFullYear() ? undefined : "numeric" });
  }

  function statsText(stats) {
    if (!stats || !stats.eval_count) return null;
    const seconds = (stats.eval_duration || 0) / 1e9;
    const rate = seconds > 0 ? stats.eval_count / seconds : 0;
    const short = `${stats.eval_count} tokens · ${rate.toFixed(1)} tokens/s`;
    const lines = [short];
    if (stats.prompt_eval_count !== undefined) {
      const promptSeconds = (stats.prompt_eval_duration || 0) / 1e9;
      const promptRate = promptSeconds > 0 ? stats.prompt_eval_count / promptSeconds : 0;
      lines.push(`prompt: ${stats.prompt_eval_count} tokens · ${promptRate.toFixed(1)} tokens/s`);
    }
    if (stats.total_duration) lines.push(`total: ${(stats.total_duration / 1e9).toFixed(2)} s`);
    if (stats.done_reason) lines.push(`stopped by: ${stats.done_reason}`);
    return { short, long: lines.join("\n") };
  }

  const nearBottom = () =>
    el.thread.scrollHeight - el.thread.scrollTop - el.thread.clientHeight < 80;
  const toBottom = () => { el.thread.scrollTop = el.thread.scrollHeight; };

  function updateWelcome() {
    const empty = el.messages.childElementCount === 0;
    el.welcome.hidden = !empty;
    if (!state.models.length) {
      el.welcomeNote.textContent = "No models yet: pull one with the download button next to the model picker.";
    } else {
      el.welcomeNote.textContent = `Chatting with ${el.model.value}.`;
    }
  }

  // -- messages in the thread ----------------------------------------------------------------

  async function imageUrl(digest) {
    const conversation = state.conversation;
    if (state.imageCache.has(digest)) return state.imageCache.get(digest).url;
    const response = await api(`/api/conversations/${encodeURIComponent(conversation.id)}/images/${encodeURIComponent(digest)}`);
    const blob = await response.blob();
    const entry = { blob, url: URL.createObjectURL(blob) };
    state.imageCache.set(digest, entry);
    return entry.url;
  }

  function addUserMessage(text, images) {
    const node = document.createElement("div");
    node.className = "msg user";
    if (images && images.length) {
      const row = document.createElement("div");
      row.className = "images";
      for (const source of images) {
        const img = document.createElement("img");
        img.alt = "attached image";
        if (source.url) img.src = source.url;
        else imageUrl(source.digest).then((url) => { img.src = url; }).catch(() => {});
        row.append(img);
      }
      node.append(row);
    }
    if (text) {
      const bubble = document.createElement("div");
      bubble.className = "bubble";
      bubble.textContent = text;
      node.append(bubble);
    }
    el.messages.append(node);
    updateWelcome();
    return node;
  }

  function addAssistantMessage() {
    const node = document.createElement("div");
    node.className = "msg assistant";
    const thinking = document.createElement("details");
    thinking.className = "thinking";
    thinking.hidden = true;
    thinking.innerHTML = "<summary class=\"muted\">Thinking</summary><div class=\"thinking-text muted\"></div>";
    const content = document.createElement("div");
    content.className = "content";
    const foot = document.createElement("div");
    foot.className = "msg-foot";
    node.append(thinking, content, foot);
    el.messages.append(node);
    updateWelcome();
    const view = {
      node, content, foot, text: "", thinking: "", frame: 0,
      update(final = false) {
        if (view.frame) cancelAnimationFrame(view.frame);
        view.frame = 0;
        const stick = nearBottom();
        if (view.thinking) {
          thinking.hidden = false;
          thinking.querySelector(".thinking-text").textContent = view.thinking;
        }
        if (view.text) renderMarkdown(content, view.text, { final });
        else if (!final) content.innerHTML = '<div class="typing" aria-label="Generating"><span></span><span></span><span></span></div>';
        else content.textContent = "";
        if (stick) toBottom();
      },
      schedule() {
        if (!view.frame) view.frame = requestAnimationFrame(() => view.update(false));
      },
      finish({ stats, note, error } = {}) {
        view.update(true);
        foot.replaceChildren();
        foot.append(copyButton(() => view.text));
        const retry = document.createElement("button");
        retry.type = "button";
        retry.className = "icon-btn small regenerate";
        retry.title = "Regenerate";
        retry.setAttribute("aria-label", "Regenerate");
        retry.innerHTML = ICON_RETRY;
        retry.addEventListener("click", () => regenerate());
        foot.append(retry);
        const summary = statsText(stats);
        if (summary) {
          const span = document.createElement("span");
          span.className = "stats";
          span.textContent = summary.short;
          span.title = summary.long;
          node.title = summary.long;
          foot.append(span);
        }
        if (note || error) {
          const line = document.createElement("div");
          line.className = error ? "note error" : "note";
          line.textContent = error || note;
          node.insertBefore(line, foot);
        }
        markLast();
      },
    };
    view.update(false);
    return view;
  }

  // Only the newest answer offers "Regenerate".
  function markLast() {
    const all = el.messages.querySelectorAll(".msg");
    all.forEach((node) => node.classList.remove("last"));
    const last = all[all.length - 1];
    for (const button of el.messages.querySelectorAll(".regenerate")) {
      button.hidden = !last || !last.contains(button);
    }
    if (last) last.classList.add("last");
  }

  function renderConversation(conversation) {
    el.messages.replaceChildren();
    for (const message of conversation.messages) {
      if (message.role === "user") {
        addUserMessage(message.content, (message.images || []).map((digest) => ({ digest })));
      } else if (message.role === "assistant") {
        const view = addAssistantMessage();
        view.text = message.content || "";
        view.thinking = message.thinking || "";
        if (message.tool_calls) {
          view.text += "\n\n```json\n" + JSON.stringify(message.tool_calls, null, 2) + "\n```";
        }
        view.finish({ stats: message });
      }
    }
    markLast();
    updateWelcome();
    toBottom();
  }

  // -- models --------------------------------------------------------------------------------

  async function loadModels(select) {
    const data = await getJSON("/api/tags");
    state.models = (data.models || []).map((m) => m.name).sort();
    const wanted = select || el.model.value || localStorage.getItem(MODEL_STORE);
    el.model.replaceChildren();
    if (!state.models.length) {
      const option = new Option("No models", "");
      option.disabled = true;
      el.model.append(option);
    }
    for (const name of state.models) el.model.append(new Option(name, name));
    setModel(state.models.includes(wanted) ? wanted : state.models[0] || "");
  }

  function setModel(name) {
    if (name && !state.models.includes(name)) {
      el.model.append(new Option(name, name));
      state.models.push(name);
    }
    el.model.value = name;
    updateComposer();
    updateWelcome();
    refreshCapabilities();
  }

  async function refreshCapabilities() {
    const model = el.model.value;
    if (!model) { el.attach.hidden = true; return; }
    if (!state.capabilities.has(model)) {
      try {
        const info = await getJSON("/api/show", { method: "POST", body: { model } });
        state.capabilities.set(model, info.capabilities || []);
      } catch {
        state.capabilities.set(model, []);
      }
    }
    if (el.model.value !== model) return;
    const vision = state.capabilities.get(model).includes("vision");
    el.attach.hidden = !vision;
    if (!vision) clearAttachments();
  }
  const hasVision = () => (state.capabilities.get(el.model.value) || []).includes("vision");

  el.model.addEventListener("change", () => {
    localStorage.setItem(MODEL_STORE, el.model.value);
    setModel(el.model.value);
  });

  // -- pulling a model -----------------------------------------------------------------------

  let pulling = null;
  const formatBytes = (n) => {
    if (n < 1024) return `${n} B`;
    const units = ["KB", "MB", "GB", "TB"];
    let value = n;
    let unit = -1;
    do { value /= 1024; unit += 1; } while (value >= 1024 && unit < units.length - 1);
    return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
  };

  el.pullOpen.addEventListener("click", () => {
    if (!pulling) {
      el.pullError.hidden = true;
      el.pullProgress.hidden = true;
      el.pullName.value = "";
    }
    el.pull.showModal();
  });
  el.pullCancel.addEventListener("click", () => {
    if (pulling) pulling.abort();
    el.pull.close();
  });
  el.pull.addEventListener("close", () => { if (pulling) pulling.abort(); });
  el.pullForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = el.pullName.value.trim();
    if (!name || pulling) return;
    pulling = new AbortController();
    el.pullError.hidden = true;
    el.pullProgress.hidden = false;
    el.pullBar.style.width = "0%";
    el.pullStatus.textContent = "starting…";
    el.pullStart.disabled = true;
    el.pullName.disabled = true;
    const layers = new Map();
    let ok = false;
    try {
      // A name given with http:// asks for a plain-HTTP registry, as `pull --insecure` does.
      const body = { model: name, stream: true };
      if (/^http:\/\//i.test(name)) body.insecure = true;
      const response = await api("/api/pull", { method: "POST", body, signal: pulling.signal });
      for await (const event of ndjson(response)) {
        if (event.error) throw new ApiError(event.error, 500);
        if (event.digest && event.total) layers.set(event.digest, { total: event.total, completed: event.completed || 0 });
        const total = [...layers.values()].reduce((sum, l) => sum + l.total, 0);
        const done = [...layers.values()].reduce((sum, l) => sum + l.completed, 0);
        if (total) el.pullBar.style.width = `${Math.min(100, (100 * done) / total).toFixed(1)}%`;
        el.pullStatus.textContent = event.digest && event.total
          ? `${event.status.replace(/sha256:([0-9a-f]{12})[0-9a-f]+/, "$1")} · ${formatBytes(done)} / ${formatBytes(total)}`
          : event.status;
        if (event.status === "success") ok = true;
      }
      if (ok) {
        el.pullBar.style.width = "100%";
        el.pullStatus.textContent = `${name} is ready`;
        await loadModels(name.replace(/^[a-z]+:\/\//i, ""));
        const pulled = state.models.find((m) => m === name || m === `${name}:latest` || name.endsWith(`/${m}`)) || name;
        setModel(pulled);
        localStorage.setItem(MODEL_STORE, pulled);
      }
    } catch (error) {
      if (error.name !== "AbortError") {
        el.pullError.textContent = error.message;
        el.pullError.hidden = false;
      }
      el.pullProgress.hidden = true;
    } finally {
      pulling = null;
      el.pullStart.disabled = false;
      el.pullName.disabled = false;
    }
  });

  // -- conversations in the sidebar ----------------------------------------------------------

  async function loadConversations() {
    const token = ++state.listToken;
    const params = new URLSearchParams({ limit: "200" });
    if (state.query) params.set("q", state.query);
    let data;
    try {
      data = await getJSON(`/api/conversations?${params}`);
    } catch (error) {
      if (token === state.listToken) {
        el.list.replaceChildren();
        el.listEmpty.textContent = error.message;
        el.listEmpty.hidden = false;
      }
      return;
    }
    if (token !== state.listToken) return;
    const template = $("conversation-item");
    const items = data.conversations.map((conversation) => {
      const item = template.content.firstElementChild.cloneNode(true);
      item.dataset.id = conversation.id;
      const link = item.querySelector(".conv-link");
      link.href = `#/c/${encodeURIComponent(conversation.id)}`;
      item.querySelector(".conv-title").textContent = conversation.title || "New chat";
      item.querySelector(".conv-meta").textContent = ago(conversation.updated_at);
      if (state.conversation && state.conversation.id === conversation.id) item.classList.add("active");
      item.querySelector(".conv-rename").addEventListener("click", () => startRename(item, conversation));
      item.querySelector(".conv-delete").addEventListener("click", () => confirmDelete(conversation));
      return item;
    });
    el.list.replaceChildren(...items);
    el.listEmpty.hidden = items.length > 0;
    el.listEmpty.textContent = state.query ? "Nothing matches." : "No conversations yet.";
  }

  function markActive() {
    for (const item of el.list.querySelectorAll(".conv")) {
      item.classList.toggle("active", Boolean(state.conversation) && item.dataset.id === state.conversation.id);
    }
  }

  function startRename(item, conversation) {
    const link = item.querySelector(".conv-link");
    const input = document.createElement("input");
    input.className = "conv-edit";
    input.value = conversation.title || "";
    input.setAttribute("aria-label", "Conversation title");
    link.hidden = true;
    item.querySelector(".conv-actions").hidden = true;
    item.prepend(input);
    input.focus();
    input.select();
    let finished = false;
    const finish = async (save) => {
      if (finished) return;
      finished = true;
      const title = input.value.trim();
      if (save && title && title !== conversation.title) {
        try {
          const updated = await getJSON(`/api/conversations/${encodeURIComponent(conversation.id)}`,
            { method: "PATCH", body: { title } });
          if (state.conversation && state.conversation.id === updated.id) {
            state.conversation.title = updated.title;
            el.title.textContent = updated.title;
          }
        } catch (error) { showError(error.message); }
      }
      await loadConversations();
    };
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter") { event.preventDefault(); finish(true); }
      if (event.key === "Escape") { event.preventDefault(); event.stopPropagation(); finish(false); }
    });
    input.addEventListener("blur", () => finish(true));
  }

  function confirmDelete(conversation) {
    el.confirmText.textContent = `“${conversation.title || "New chat"}” and its messages will be deleted for good.`;
    el.confirm.returnValue = "";
    el.confirm.showModal();
    el.confirm.addEventListener("close", async () => {
      if (el.confirm.returnValue !== "ok") return;
      try {
        await api(`/api/conversations/${encodeURIComponent(conversation.id)}`, { method: "DELETE" });
      } catch (error) { showError(error.message); }
      if (state.conversation && state.conversation.id === conversation.id) newChat();
      await loadConversations();
    }, { once: true });
  }

  let searchTimer = 0;
  el.search.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => {
      state.query = el.search.value.trim();
      loadConversations();
    }, 200);
  });

  // -- opening and starting conversations ----------------------------------------------------

  function clearImageCache() {
    for (const entry of state.imageCache.values()) URL.revokeObjectURL(entry.url);
    state.imageCache.clear();
  }

  function newChat() {
    stopGenerating();
    state.conversation = null;
    state.draft = { system: "", options: {} };
    clearImageCache();
    el.messages.replaceChildren();
    el.title.textContent = "";
    if (location.hash) history.pushState(null, "", location.pathname);
    markActive();
    updateWelcome();
    closeSidebar();
    el.prompt.focus();
  }

  async function openConversation(id) {
    stopGenerating();
    let conversation;
    try {
      conversation = await getJSON(`/api/conversations/${encodeURIComponent(id)}`);
    } catch (error) {
      showError(error.message);
      newChat();
      return;
    }
    clearImageCache();
    state.conversation = conversation;
    el.title.textContent = conversation.title;
    const used = [...conversation.messages].reverse().find((m) => m.model);
    const model = (used && used.model) || conversation.model;
    if (model && state.models.includes(model)) setModel(model);
    renderConversation(conversation);
    markActive();
    closeSidebar();
  }

  function route() {
    const match = /^#\/c\/(.+)$/.exec(location.hash);
    if (match) openConversation(decodeURIComponent(match[1]));
    else if (state.conversation) newChat();
  }
  window.addEventListener("hashchange", route);
  el.newChat.addEventListener("click", newChat);

  // -- settings (system prompt, temperature) --------------------------------------------------

  function currentSettings() {
    return state.conversation
      ? { system: state.conversation.system || "", options: state.conversation.options || {} }
      : state.draft;
  }

  el.settingsOpen.addEventListener("click", () => {
    const { system, options } = currentSettings();
    el.system.value = system;
    const unset = options.temperature === undefined;
    el.temperatureDefault.checked = unset;
    el.temperature.disabled = unset;
    el.temperature.value = unset ? 0.8 : options.temperature;
    el.temperatureValue.textContent = unset ? "—" : Number(el.temperature.value).toFixed(2);
    el.settings.returnValue = "";
    el.settings.showModal();
  });
  el.temperature.addEventListener("input", () => {
    el.temperatureValue.textContent = Number(el.temperature.value).toFixed(2);
  });
  el.temperatureDefault.addEventListener("change", () => {
    el.temperature.disabled = el.temperatureDefault.checked;
    el.temperatureValue.textContent = el.temperatureDefault.checked ? "—" : Number(el.temperature.value).toFixed(2);
  });
  el.settings.addEventListener("close", async () => {
    if (el.settings.returnValue !== "save") return;
    const options = { ...currentSettings().options };
    if (el.temperatureDefault.checked) delete options.temperature;
    else options.temperature = Number(el.temperature.value);
    const system = el.system.value;
    if (!state.conversation) {
      state.draft = { system, options };
      return;
    }
    try {
      const updated = await getJSON(`/api/conversations/${encodeURIComponent(state.conversation.id)}`,
        { method: "PATCH", body: { system, options } });
      state.conversation.system = updated.system;
      state.conversation.options = updated.options;
    } catch (error) { showError(error.message); }
  });

  // -- attachments ---------------------------------------------------------------------------

  function clearAttachments() {
    for (const a of state.attachments) URL.revokeObjectURL(a.url);
    state.attachments = [];
    renderAttachments();
  }

  function renderAttachments() {
    el.attachments.replaceChildren(...state.attachments.map((attachment, index) => {
      const box = document.createElement("div");
      box.className = "attachment";
      const img = document.createElement("img");
      img.src = attachment.url;
      img.alt = attachment.name || "image";
      const remove = document.createElement("button");
      remove.type = "button";
      remove.setAttribute("aria-label", "Remove image");
      remove.innerHTML = '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M6 6l12 12M18 6 6 18"/></svg>';
      remove.addEventListener("click", () => {
        URL.revokeObjectURL(attachment.url);
        state.attachments.splice(index, 1);
        renderAttachments();
      });
      box.append(img, remove);
      return box;
    }));
    el.attachments.hidden = state.attachments.length === 0;
    updateComposer();
  }

  const toBase64 = (blob) => new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1]);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });

  async function addFiles(files) {
    const images = [...files].filter((f) => f.type.startsWith("image/"));
    if (!images.length) return;
    if (!hasVision()) {
      showError(`${el.model.value || "This model"} does not take images; pick a vision model to attach one.`);
      return;
    }
    for (const file of images) {
      state.attachments.push({ data: await toBase64(file), url: URL.createObjectURL(file), name: file.name });
    }
    renderAttachments();
    el.prompt.focus();
  }

  el.attach.addEventListener("click", () => el.file.click());
  el.file.addEventListener("change", () => { addFiles(el.file.files); el.file.value = ""; });
  el.prompt.addEventListener("paste", (event) => {
    const files = [...(event.clipboardData?.files || [])];
    if (files.some((f) => f.type.startsWith("image/"))) {
      event.preventDefault();
      addFiles(files);
    }
  });
  const main = document.querySelector(".main");
  main.addEventListener("dragover", (event) => {
    if ([...event.dataTransfer.items].some((i) => i.kind === "file")) {
      event.preventDefault();
      main.classList.add("dragging");
    }
  });
  main.addEventListener("dragleave", (event) => {
    if (!main.contains(event.relatedTarget)) main.classList.remove("dragging");
  });
  main.addEventListener("drop", (event) => {
    event.preventDefault();
    main.classList.remove("dragging");
    addFiles(event.dataTransfer.files);
  });

  // -- sending, streaming, stopping, regenerating ----------------------------------------------

  function updateComposer() {
    const busy = Boolean(state.busy);
    el.send.hidden = busy;
    el.stop.hidden = !busy;
    el.send.disabled = !el.model.value || (!el.prompt.value.trim() && state.attachments.length === 0);
  }

  function autosize() {
    el.prompt.style.height = "auto";
    el.prompt.style.height = `${el.prompt.scrollHeight}px`;
  }
  el.prompt.addEventListener("input", () => { autosize(); updateComposer(); });
  el.prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submit();
    }
  });
  el.composer.addEventListener("submit", (event) => { event.preventDefault(); submit(); });
  el.stop.addEventListener("click", () => stopGenerating());
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && state.busy && !document.querySelector("dialog[open]")) {
      event.preventDefault();
      stopGenerating();
    }
    if (event.key.toLowerCase() === "o" && event.shiftKey && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      newChat();
    }
  });

  function stopGenerating() {
    if (state.busy) state.busy.controller.abort();
  }

  async function submit() {
    if (state.busy || el.send.disabled) return;
    const text = el.prompt.value;
    if (!text.trim() && !state.attachments.length) return;
    const images = state.attachments;
    state.attachments = [];
    el.prompt.value = "";
    autosize();
    renderAttachments();
    el.banner.hidden = true;
    await turn({ content: text, images: images.map((a) => a.data) }, images.map((a) => ({ url: a.url })));
  }

  async function ensureConversation() {
    if (state.conversation) return state.conversation;
    const body = { model: el.model.value };
    if (state.draft.system) body.system = state.draft.system;
    if (Object.keys(state.draft.options).length) body.options = state.draft.options;
    const created = await getJSON("/api/conversations", { method: "POST", body });
    created.messages = [];
    state.conversation = created;
    history.pushState(null, "", `#/c/${encodeURIComponent(created.id)}`);
    return created;
  }

  // One turn: the user's message is shown (and stored by the server), the answer streams in.
  async function turn(message, previews, { showUser = true } = {}) {
    const controller = new AbortController();
    state.busy = { controller };
    updateComposer();
    if (showUser) addUserMessage(message.content, previews);
    const view = addAssistantMessage();
    toBottom();
    let stats = null;
    let note = null;
    let error = null;
    try {
      const conversation = await ensureConversation();
      const userMessage = { role: "user", content: message.content };
      if (message.images && message.images.length) userMessage.images = message.images;
      const response = await api("/api/chat", {
        method: "POST", signal: controller.signal,
        body: { model: el.model.value, conversation: conversation.id, messages: [userMessage], stream: true },
      });
      conversation.messages.push({ role: "user", content: message.content, images: message.images || [] });
      loadConversations();
      for await (const chunk of ndjson(response)) {
        if (chunk.error) throw new ApiError(chunk.error, 500);
        const part = chunk.message || {};
        if (part.content) view.text += part.content;
        if (part.thinking) view.thinking += part.thinking;
        if (chunk.done) {
          stats = chunk;
          conversation.messages.push({ role: "assistant", content: view.text, ...chunk });
        }
        view.schedule();
      }
      if (!stats) note = "The answer ended early.";
    } catch (caught) {
      if (caught.name === "AbortError") note = "Stopped.";
      else error = caught.message;
    } finally {
      state.busy = null;
      view.finish({ stats, note, error });
      updateComposer();
      if (state.conversation) {
        el.title.textContent = state.conversation.title || el.title.textContent;
        loadConversations().then(syncTitle);
      }
      el.prompt.focus();
    }
  }

  function syncTitle() {
    if (!state.conversation) return;
    const item = el.list.querySelector(`.conv[data-id="${CSS.escape(state.conversation.id)}"] .conv-title`);
    if (item) {
      state.conversation.title = item.textContent;
      el.title.textContent = item.textContent;
    }
    markActive();
  }

  // Regenerate: the server forgets the last question and everything after it, then the
  // question is asked again (with its images).
  async function regenerate() {
    const conversation = state.conversation;
    if (state.busy || !conversation) return;
    const index = conversation.messages.map((m) => m.role).lastIndexOf("user");
    if (index < 0) return;
    const question = conversation.messages[index];
    try {
      const images = [];
      for (const image of question.images || []) {
        if (/^sha256:/.test(image)) {
          await imageUrl(image);
          images.push(await toBase64(state.imageCache.get(image).blob));
        } else {
          images.push(image);
        }
      }
      await api(`/api/conversations/${encodeURIComponent(conversation.id)}/messages?from=${index}`, { method: "DELETE" });
      conversation.messages.splice(index);
      // Drop the answer (or stopped/failed attempt) shown after the question.
      const nodes = [...el.messages.querySelectorAll(".msg")];
      const lastUser = nodes.map((n) => n.classList.contains("user")).lastIndexOf(true);
      for (const node of nodes.slice(lastUser + 1)) node.remove();
      await turn({ content: question.content, images }, [], { showUser: false });
    } catch (error) {
      showError(error.message);
    }
  }

  // -- sidebar on phones ---------------------------------------------------------------------

  function closeSidebar() { el.app.classList.remove("sidebar-open"); el.scrim.hidden = true; }
  el.toggle.addEventListener("click", () => {
    const open = !el.app.classList.contains("sidebar-open");
    el.app.classList.toggle("sidebar-open", open);
    el.scrim.hidden = !open;
  });
  el.scrim.addEventListener("click", closeSidebar);
  el.list.addEventListener("click", (event) => {
    if (event.target.closest(".conv-link")) closeSidebar();
  });

  // -- start ---------------------------------------------------------------------------------

  async function start() {
    try {
      await loadModels();
    } catch (error) {
      showError(error.message);
    }
    await loadConversations();
    if (/^#\/c\//.test(location.hash)) route();
    updateComposer();
    updateWelcome();
    el.prompt.focus();
    document.body.dataset.ready = "true";
  }
  start();
})();
