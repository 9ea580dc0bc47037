//! `GET /`: one self-contained page (no external scripts, styles or fonts) to try the model:
//! drop or choose an image and see the top-5 as bars. `/?image=URL` classifies the image at a
//! same-origin or `data:` URL on load, which is how the headless-browser test drives the page.

pub const INDEX_HTML: &str = r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>kestrel serve</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body { font-family: sans-serif; max-width: 40em; margin: 2em auto; padding: 0 1em; color: #222; }
  #drop { border: 2px dashed #888; border-radius: 8px; padding: 2em; text-align: center; cursor: pointer; }
  #drop.over { background: #eef; border-color: #44a; }
  #preview { max-width: 224px; max-height: 224px; display: block; margin: 1em auto; }
  .row { display: flex; align-items: center; margin: 0.3em 0; }
  .name { width: 14em; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
  .bar { height: 1.1em; background: #4a7; margin: 0 0.5em; }
  .pct { width: 5em; text-align: right; font-variant-numeric: tabular-nums; }
  #status { color: #555; min-height: 1.2em; }
  .error { color: #b00; }
</style>
</head>
<body>
<h1>kestrel serve</h1>
<p id="model"></p>
<div id="drop">Drop an image here, or <label><u>choose one</u>
  <input id="file" type="file" accept="image/*" hidden></label></div>
<img id="preview" alt="" hidden>
<p id="status"></p>
<div id="results"></div>
<script>
const $ = (id) => document.getElementById(id);
fetch('/healthz').then(r => r.json()).then(h => {
  $('model').textContent = 'Model: ' + h.model + ' (' + h.engine + ' engine, ' + h.classes + ' classes)';
}).catch(() => {});

async function classify(blob) {
  $('preview').src = URL.createObjectURL(blob);
  $('preview').hidden = false;
  $('status').className = '';
  $('status').textContent = 'Classifying…';
  $('results').replaceChildren();
  try {
    const r = await fetch('/v1/classify', { method: 'POST', body: blob,
      headers: { 'Content-Type': blob.type || 'application/octet-stream' } });
    const j = await r.json();
    if (!r.ok) throw new Error(j.error || ('HTTP ' + r.status));
    for (const t of j.top) {
      const row = document.createElement('div');
      row.className = 'row';
      const name = document.createElement('span');
      name.className = 'name';
      name.textContent = t.class;
      const bar = document.createElement('span');
      bar.className = 'bar';
      bar.style.width = (t.probability * 15).toFixed(2) + 'em';
      const pct = document.createElement('span');
      pct.className = 'pct';
      pct.textContent = (100 * t.probability).toFixed(1) + '%';
      row.append(name, bar, pct);
      $('results').append(row);
    }
    $('status').textContent = 'Done in ' + j.timings.total_ms.toFixed(1) + ' ms (batch of ' + j.batch_size + ').';
  } catch (e) {
    $('status').className = 'error';
    $('status').textContent = 'Error: ' + e.message;
  }
}

$('file').addEventListener('change', (e) => { if (e.target.files[0]) classify(e.target.files[0]); });
const drop = $('drop');
drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  if (e.dataTransfer.files[0]) classify(e.dataTransfer.files[0]);
});
const url = new URLSearchParams(location.search).get('image');
if (url) fetch(url).then(r => r.blob()).then(classify);
</script>
</body>
</html>
"##;
