"""The Gradio UI: `layout.build_ui` lays out one gr.Blocks; each other module holds one tab's plain handlers."""
