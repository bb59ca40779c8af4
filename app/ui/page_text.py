"""The page's fixed words and keys: the introduction, the labelling help, the page-level keyboard shortcuts and
the warning shown when the app is reachable without sign-in."""

INTRO = """# Teach a detector your objects
**New here?** 1) Create a project and list the classes you care about (tab 1). 2) Upload a handful of images and
draw a box around every object of those classes (tab 2) - or press *Pre-annotate* and correct what the model finds.
3) Press **Tune** (tab 3): a small prompt is trained in the background while you keep labelling.
4) Let the model suggest boxes on all your images and review them (tab 2b), then tune again.
No images of your own? Press **Try the example project** below.
"""

LABEL_HELP = """Drag on the image to draw a box; click a box to select it. Keys on the image: **C** draw,
**D** move/pan, **E** edit the selected box, **Delete** remove it, **Space** reset the view.
Anywhere on the page: **S** save boxes, **N** / **P** next / previous image. Nothing is stored until you press Save."""

# Page-level shortcuts; ignored while typing in a text field.
SHORTCUTS_JS = """
<script>
document.addEventListener('keydown', (event) => {
  const tag = (event.target.tagName || '').toLowerCase();
  if (['input', 'textarea', 'select'].includes(tag) || event.ctrlKey || event.metaKey || event.altKey) return;
  // Review keys avoid the annotator's own (C, D, E, Delete, Space); a key acts only on a button in the open tab.
  const target = {s: 'save-boxes', n: 'next-image', p: 'prev-image', a: 'review-accept-all', y: 'review-accept-one',
                  x: 'review-reject-one', v: 'review-accept-edited', r: 'review-next'}[event.key.toLowerCase()];
  const button = target && document.getElementById(target);
  if (button && button.offsetParent !== null) { event.preventDefault(); button.click(); }
});
</script>
"""


EXPOSED_WARNING = ("this app serves a non-loopback address without sign-in: anyone who can reach it sees and "
                   "changes every project. Start it with --auth USER:PASSWORD, SDPT_AUTH or --users-file.")
