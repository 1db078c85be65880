//! The egui panel (feature `egui`): live emotion control and diagnostics
//! for one talking head.
//!
//! [`TalkingHeadUiPlugin`] draws a window in bevy_egui's
//! `EguiPrimaryContextPass` for the [`SelectedTalkingHead`] (the first head
//! if none is selected): 7 emotion sliders and intensity (written to the
//! head's [`TalkingHead::emotion`], which the plugin forwards to the worker's
//! control channel the same frame), the style, a bar chart of the 52 ARKit
//! weights, a scrolling plot of jawOpen against the audio level, and
//! latency / worker-load readouts. The panel owns no state the plugin needs.
//! `bevy_egui::EguiPlugin` is added if missing. A game that configures its
//! own `EguiPlugin` must add it *before* `TalkingHeadUiPlugin` (or
//! [`TalkingHeadPlugins`](crate::plugin::TalkingHeadPlugins)): added after,
//! Bevy refuses it as a duplicate.

use bevy::prelude::*;
use bevy_egui::{EguiContexts, EguiPlugin, EguiPrimaryContextPass, egui};

use crate::model::EMOTIONS;
use crate::plugin::{
    FaceExpression, TalkingHead, TalkingHeadRuntime, TalkingHeadSettings, TalkingHeadState,
};
use crate::rig::ARKIT_BLENDSHAPES;

/// Which head the panel shows (`None`: the first one found).
#[derive(Resource, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SelectedTalkingHead(pub Option<Entity>);

/// Adds the talking-head panel.
#[derive(Clone, Debug, Default)]
pub struct TalkingHeadUiPlugin;

impl Plugin for TalkingHeadUiPlugin {
    fn build(&self, app: &mut App) {
        if !app.is_plugin_added::<EguiPlugin>() {
            app.add_plugins(EguiPlugin::default());
        }
        app.init_resource::<SelectedTalkingHead>()
            .add_systems(EguiPrimaryContextPass, talking_head_panel);
    }
}

/// Draws the panel.
pub fn talking_head_panel(
    mut contexts: EguiContexts,
    mut selected: ResMut<SelectedTalkingHead>,
    runtime: Option<Res<TalkingHeadRuntime>>,
    mut settings: Option<ResMut<TalkingHeadSettings>>,
    mut heads: Query<(
        Entity,
        Option<&Name>,
        &mut TalkingHead,
        &TalkingHeadState,
        &FaceExpression,
    )>,
) -> Result {
    let ctx = contexts.ctx_mut()?;
    let all: Vec<(Entity, String)> = heads
        .iter()
        .map(|(e, n, ..)| {
            (
                e,
                n.map(|n| n.to_string()).unwrap_or_else(|| format!("{e}")),
            )
        })
        .collect();
    if selected.0.is_none_or(|e| !heads.contains(e)) {
        selected.0 = all.first().map(|(e, _)| *e);
    }
    let styles: Vec<String> = runtime
        .as_ref()
        .and_then(|r| r.model().map(|m| m.config().styles.clone()))
        .unwrap_or_default();
    egui::Window::new("Talking head")
        .default_width(330.0)
        .anchor(egui::Align2::RIGHT_TOP, [-8.0, 8.0])
        .show(ctx, |ui| {
            if all.len() > 1 {
                let current = all
                    .iter()
                    .find(|(e, _)| Some(*e) == selected.0)
                    .map(|(_, n)| n.clone())
                    .unwrap_or_default();
                egui::ComboBox::from_label("avatar")
                    .selected_text(current)
                    .show_ui(ui, |ui| {
                        for (e, n) in &all {
                            ui.selectable_value(&mut selected.0, Some(*e), n);
                        }
                    });
            }
            // Runtime readouts.
            if let Some(rt) = &runtime {
                let state = match rt.state() {
                    crate::plugin::RuntimeState::Loading => "loading model…".to_string(),
                    crate::plugin::RuntimeState::Ready => "running".to_string(),
                    crate::plugin::RuntimeState::Failed(e) => format!("failed: {e}"),
                };
                ui.label(format!("worker: {state}"));
                let delay = settings.as_ref().map(|s| s.output_delay_secs).unwrap_or(0.0);
                if let Some(lat) = rt.model_latency_secs() {
                    ui.label(format!(
                        "latency: model {:.0} ms + delay {:.0} ms · step {:.2} ms · load {:.1} % · sessions {}",
                        lat * 1e3,
                        delay * 1e3,
                        rt.step_secs() * 1e3,
                        rt.worker_load() * 100.0,
                        rt.sessions()
                    ));
                }
            }
            if let Some(s) = settings.as_deref_mut() {
                ui.checkbox(&mut s.upper_face, "blink / gaze layer");
            }
            let Some(sel) = selected.0 else {
                ui.label("no TalkingHead in the scene");
                return;
            };
            let Ok((_, _, mut head, state, face)) = heads.get_mut(sel) else {
                return;
            };
            ui.separator();
            ui.heading("Emotion");
            for (i, name) in EMOTIONS.iter().enumerate() {
                let mut v = head.emotion.weights[i];
                if ui
                    .add(egui::Slider::new(&mut v, 0.0..=1.0).text(*name))
                    .changed()
                {
                    head.emotion.weights[i] = v;
                }
            }
            let mut k = head.emotion.intensity;
            if ui
                .add(egui::Slider::new(&mut k, 0.0..=1.0).text("intensity"))
                .changed()
            {
                head.emotion.intensity = k;
            }
            if !styles.is_empty() {
                let mut style = head.style.clone();
                egui::ComboBox::from_label("style")
                    .selected_text(style.clone())
                    .show_ui(ui, |ui| {
                        for s in &styles {
                            ui.selectable_value(&mut style, s.clone(), s);
                        }
                    });
                if style != head.style {
                    head.style = style;
                }
            }
            let mut gain = head.gain;
            if ui
                .add(egui::Slider::new(&mut gain, 0.0..=2.0).text("gain"))
                .changed()
            {
                head.gain = gain;
            }
            ui.separator();
            let spf = runtime
                .as_ref()
                .and_then(|r| r.model().map(|m| m.config().samples_per_frame()))
                .unwrap_or(320);
            let delay = settings.as_ref().map(|s| s.output_delay_secs).unwrap_or(0.0);
            level_meter(ui, shown_level_dbfs(state, spf, delay));
            ui.label("jawOpen (orange) vs audio level (grey)");
            plot_history(ui, state);
            ui.label("ARKit weights");
            bar_chart(ui, &face.weights);
            if let Some(err) = state.last_error() {
                ui.colored_label(egui::Color32::LIGHT_RED, format!("last error: {err}"));
            }
        });
    Ok(())
}

/// Bottom of the level meter's scale, dBFS (the plugin's speech activity
/// also maps −60..0 dBFS to 0..1).
const METER_FLOOR_DB: f32 = -60.0;

/// RMS level in dBFS of the audio under the face being shown: the level of
/// the expression frame whose span holds the playhead minus the output
/// delay (`None` while nothing plays or no frame is there; `-inf` for
/// digital silence).
pub fn shown_level_dbfs(
    state: &TalkingHeadState,
    samples_per_frame: usize,
    output_delay_secs: f32,
) -> Option<f32> {
    let t = state.playhead_secs()? - output_delay_secs as f64;
    let half = samples_per_frame as f64 / crate::audio::MODEL_SAMPLE_RATE as f64 / 2.0;
    state
        .frames()
        .map(|f| (f, (f.time_secs(samples_per_frame) - t).abs()))
        .filter(|(_, d)| *d <= half * 1.01)
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(f, _)| f.level_dbfs)
}

/// A horizontal meter, −60..0 dBFS: green, amber above −18 dBFS, red above
/// −6 dBFS, with the value in text.
fn level_meter(ui: &mut egui::Ui, dbfs: Option<f32>) {
    ui.horizontal(|ui| {
        let text = match dbfs {
            Some(db) if db.is_finite() => format!("level {db:6.1} dBFS"),
            Some(_) => "level   -inf dBFS".to_string(),
            None => "level     -- dBFS".to_string(),
        };
        ui.monospace(text);
        let width = ui.available_width().max(60.0);
        let (resp, painter) = ui.allocate_painter(egui::vec2(width, 12.0), egui::Sense::hover());
        let r = resp.rect;
        painter.rect_filled(r, 2.0, egui::Color32::from_gray(24));
        let x = |db: f32| {
            r.left() + r.width() * ((db - METER_FLOOR_DB) / -METER_FLOOR_DB).clamp(0.0, 1.0)
        };
        let v = dbfs.filter(|d| !d.is_nan()).unwrap_or(f32::NEG_INFINITY);
        for (lo, hi, colour) in [
            (METER_FLOOR_DB, -18.0, egui::Color32::from_rgb(70, 190, 90)),
            (-18.0, -6.0, egui::Color32::from_rgb(230, 180, 40)),
            (-6.0, 0.0, egui::Color32::from_rgb(230, 60, 50)),
        ] {
            if v > lo {
                let seg = egui::Rect::from_min_max(
                    egui::pos2(x(lo), r.top() + 1.0),
                    egui::pos2(x(v.min(hi)), r.bottom() - 1.0),
                );
                painter.rect_filled(seg, 1.0, colour);
            }
        }
        for db in [-48.0, -36.0, -24.0, -12.0] {
            painter.line_segment(
                [egui::pos2(x(db), r.top()), egui::pos2(x(db), r.bottom())],
                egui::Stroke::new(1.0, egui::Color32::from_gray(70)),
            );
        }
    });
}

fn plot_history(ui: &mut egui::Ui, state: &TalkingHeadState) {
    let width = ui.available_width().max(100.0);
    let (resp, painter) = ui.allocate_painter(egui::vec2(width, 56.0), egui::Sense::hover());
    let r = resp.rect;
    painter.rect_filled(r, 2.0, egui::Color32::from_gray(24));
    let h = state.history();
    if h.len() < 2 {
        return;
    }
    let n = crate::plugin::HISTORY_LEN as f32;
    let x = |i: usize| r.left() + r.width() * (i as f32 + (n - h.len() as f32)) / n;
    let y = |v: f32| r.bottom() - r.height() * v.clamp(0.0, 1.0);
    let level: Vec<egui::Pos2> = h
        .iter()
        .enumerate()
        .map(|(i, p)| egui::pos2(x(i), y(p.1)))
        .collect();
    let jaw: Vec<egui::Pos2> = h
        .iter()
        .enumerate()
        .map(|(i, p)| egui::pos2(x(i), y(p.0)))
        .collect();
    painter.line(level, egui::Stroke::new(1.0, egui::Color32::from_gray(140)));
    painter.line(
        jaw,
        egui::Stroke::new(1.5, egui::Color32::from_rgb(255, 150, 40)),
    );
}

fn bar_chart(ui: &mut egui::Ui, weights: &[f32]) {
    let width = ui.available_width().max(100.0);
    let rows = 26;
    let row_h = 8.5;
    let (resp, painter) =
        ui.allocate_painter(egui::vec2(width, rows as f32 * row_h), egui::Sense::hover());
    let r = resp.rect;
    let col_w = r.width() / 2.0;
    let font = egui::FontId::monospace(7.5);
    for (i, (&w, name)) in weights.iter().zip(ARKIT_BLENDSHAPES).enumerate() {
        let col = (i / rows) as f32;
        let row = (i % rows) as f32;
        let x0 = r.left() + col * col_w;
        let y0 = r.top() + row * row_h;
        let label_w = col_w * 0.55;
        painter.text(
            egui::pos2(x0, y0 + row_h / 2.0),
            egui::Align2::LEFT_CENTER,
            name,
            font.clone(),
            egui::Color32::from_gray(200),
        );
        let bar = egui::Rect::from_min_size(
            egui::pos2(x0 + label_w, y0 + 1.0),
            egui::vec2((col_w - label_w - 4.0) * w.clamp(0.0, 1.0), row_h - 2.0),
        );
        painter.rect_filled(bar, 1.0, egui::Color32::from_rgb(80, 170, 255));
    }
}
