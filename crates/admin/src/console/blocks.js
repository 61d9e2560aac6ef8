// Blocks and challenges in force on the node: filter, lift.
'use strict';

let allBlocks = [];

function ends(ms) {
  const s = Math.max(0, Math.round((ms - Date.now()) / 1000));
  const left = s >= 3600 ? Math.round(s / 360) / 10 + ' h' : s >= 60 ? Math.round(s / 60) + ' min' : s + ' s';
  return new Date(ms).toLocaleTimeString() + ' (in ' + left + ')';
}

function renderBlocks() {
  const dom = $('b-domain').value.trim().toLowerCase();
  const text = $('b-text').value.trim().toLowerCase();
  const action = $('b-action').value;
  const shown = allBlocks.filter((b) => (!dom || b.domain.includes(dom))
    && (!text || (b.object_value + ' ' + b.object_type + ' ' + b.rule).toLowerCase().includes(text))
    && (!action || b.action === action));
  $('block-rows').replaceChildren(...shown.map((b) => el('tr', { 'data-id': b.id, 'data-object': b.object_value },
    el('td', { text: b.domain }), el('td', {}, el('code', { text: b.object_type + ' ' + b.object_value })),
    el('td', { text: b.rule }), el('td', { text: b.action === 'bot_detection' ? 'challenge' : b.action }),
    el('td', { text: ends(b.until_ms) }),
    el('td', {}, el('button', { type: 'button', text: 'Lift', class: 'lift', 'aria-label': 'Lift ' + b.object_value,
      onclick: () => liftBlock(b) })))));
  $('blocks-count').textContent = shown.length + ' of ' + allBlocks.length + ' in force';
}

async function loadBlocks() {
  show('blocks');
  $('blocks-msg').textContent = '';
  const { blocks } = await api('GET', '/blocks');
  allBlocks = blocks;
  renderBlocks();
}

async function liftBlock(b) {
  try {
    await api('DELETE', '/blocks/' + enc(b.id));
    $('blocks-msg').className = 'ok';
    $('blocks-msg').textContent = 'Lifted ' + b.object_value + '.';
    const { blocks } = await api('GET', '/blocks');
    allBlocks = blocks;
    renderBlocks();
    refreshBanner();
  } catch (e) {
    $('blocks-msg').className = 'error';
    showErrors($('blocks-msg'), e);
  }
}

for (const id of ['b-domain', 'b-text', 'b-action']) $(id).addEventListener('input', renderBlocks);
$('b-refresh').addEventListener('click', loadBlocks);
